/*
 * submit - benchmark load generator: one SMTP session on outboxd's Unix
 * socket submitting COUNT copies of the message in FILE (CRLF, about
 * 2 KB), each waiting for its 250 (durable) before the next.
 *
 *   submit SOCKET COUNT FILE
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int fd;
static char in[65536];
static size_t inlen;

static char last[512];

/* Read one reply; return its code. */
static int reply(void)
{
	for (;;) {
		char *p = in;
		while (p < in + inlen) {
			char *nl = memchr(p, '\n', (size_t)(in + inlen - p));
			if (!nl)
				break;
			if (nl - p >= 4 && p[3] == ' ') {
				int code = atoi(p);
				snprintf(last, sizeof last, "%.*s", (int)(nl - p), p);
				size_t used = (size_t)(nl + 1 - in);
				memmove(in, in + used, inlen - used);
				inlen -= used;
				return code;
			}
			p = nl + 1;
		}
		ssize_t r = read(fd, in + inlen, sizeof in - inlen);
		if (r <= 0) {
			fprintf(stderr, "submit: connection closed\n");
			exit(1);
		}
		inlen += (size_t)r;
	}
}

static void put(const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w <= 0) {
			perror("submit: write");
			exit(1);
		}
		p += w;
		n -= (size_t)w;
	}
}

int main(int argc, char **argv)
{
	if (argc != 4)
		return 64;
	long count = atol(argv[2]);
	FILE *f = fopen(argv[3], "rb");
	static char msg[65536];
	size_t mlen = f ? fread(msg, 1, sizeof msg - 8, f) : 0;
	if (!f || !mlen)
		return 66;
	memcpy(msg + mlen, ".\r\n", 3);
	mlen += 3;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", argv[1]);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		perror("submit: connect");
		return 1;
	}
	if (reply() != 220)
		return 1;
	put("EHLO bench\r\n", 12);
	if (reply() != 250)
		return 1;
	static const char env[] = "MAIL FROM:<bench@example.org>\r\nRCPT TO:<sink@example.net>\r\nDATA\r\n";
	for (long i = 0; i < count; i++) {
		put(env, sizeof env - 1);
		if (reply() != 250 || reply() != 250 || reply() != 354 || (put(msg, mlen), reply()) != 250) {
			fprintf(stderr, "submit: message %ld: unexpected reply: %s\n", i, last);
			return 1;
		}
	}
	put("QUIT\r\n", 6);
	return 0;
}
