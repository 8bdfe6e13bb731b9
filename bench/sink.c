/*
 * sink - a loopback SMTP server for the benchmark: accepts everything,
 * counts messages and connections, and can answer every batch of
 * replies DELAY_MS late (replies to commands that arrived together go
 * out together, as over a network round trip).
 *
 *   sink PORT DELAY_MS STATSFILE [data-only]
 *
 * It offers CHUNKING (BDAT, RFC 3030) as Postfix and Gmail do, unless
 * told data-only.  STATSFILE is rewritten (atomically) 20 times a second:
 *   messages N / bdat_messages N / connections_total N / connections_max N
 *
 * The delay is kept to the microsecond with a timerfd per connection
 * (libuv timers have millisecond steps and fire up to 1 ms late).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

struct batch {
	struct batch *next;
	uint64_t due_ns;
	size_t len;
	char data[];
};

struct conn {
	uv_tcp_t tcp;
	uv_poll_t timer_poll;
	int tfd;
	struct batch *head, *tail;	/* replies waiting for their time */
	char *in;
	size_t len, cap;
	int data_mode;
	uint64_t bdat_left;	/* octets of the current BDAT chunk still to come */
	int bdat_last;
	int open_handles;
};

static uv_loop_t *loop;
static int delay_ms, chunking = 1;
static const char *stats_path;
static unsigned long messages, bdat_messages, conns_total, conns_now, conns_max;

static void on_write(uv_write_t *req, int status)
{
	(void)status;
	free(req->data);
	free(req);
}

static void send_now(uv_tcp_t *tcp, const char *p, size_t n)
{
	if (uv_is_closing((uv_handle_t *)tcp))
		return;
	uv_write_t *req = malloc(sizeof *req);
	char *copy = malloc(n);
	memcpy(copy, p, n);
	req->data = copy;
	uv_buf_t b = uv_buf_init(copy, (unsigned)n);
	uv_write(req, (uv_stream_t *)tcp, &b, 1, on_write);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void arm(struct conn *c)
{
	struct itimerspec its = { 0 };
	if (c->head) {
		its.it_value.tv_sec = (time_t)(c->head->due_ns / 1000000000ULL);
		its.it_value.tv_nsec = (long)(c->head->due_ns % 1000000000ULL);
	}
	timerfd_settime(c->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void on_timer(uv_poll_t *p, int status, int events)
{
	struct conn *c = p->data;
	uint64_t ticks;
	(void)status;
	(void)events;
	(void)!read(c->tfd, &ticks, sizeof ticks);
	uint64_t now = mono_ns();
	while (c->head && c->head->due_ns <= now) {
		struct batch *b = c->head;
		c->head = b->next;
		if (!c->head)
			c->tail = NULL;
		send_now(&c->tcp, b->data, b->len);
		free(b);
	}
	arm(c);
}

static void reply(uv_tcp_t *tcp, const char *p, size_t n)
{
	struct conn *c = tcp->data;
	if (delay_ms == 0) {
		send_now(tcp, p, n);
		return;
	}
	struct batch *b = malloc(sizeof *b + n);
	b->next = NULL;
	b->due_ns = mono_ns() + (uint64_t)delay_ms * 1000000ULL;
	b->len = n;
	memcpy(b->data, p, n);
	if (c->tail)
		c->tail->next = b;
	else
		c->head = b;
	c->tail = b;
	if (c->head == b)
		arm(c);
}

static void conn_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	if (--c->open_handles > 0)
		return;
	while (c->head) {
		struct batch *b = c->head;
		c->head = b->next;
		free(b);
	}
	close(c->tfd);
	free(c->in);
	free(c);
	conns_now--;
}

static void conn_close(struct conn *c)
{
	uv_close((uv_handle_t *)&c->tcp, conn_closed);
	uv_close((uv_handle_t *)&c->timer_poll, conn_closed);
}

static void on_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
	struct conn *c = h->data;
	(void)s;
	if (c->cap - c->len < 65536) {
		c->cap = c->cap * 2 + 65536;
		c->in = realloc(c->in, c->cap);
	}
	*b = uv_buf_init(c->in + c->len, (unsigned)(c->cap - c->len));
}

/* Handle complete lines; append the replies to out. */
static int process(struct conn *c, char *out, size_t *olen)
{
	size_t pos = 0;
	int quit = 0;
	for (;;) {
		const char *r = NULL;
		if (c->bdat_left) {	/* chunk octets: skip them */
			size_t take = c->len - pos < c->bdat_left ? c->len - pos : (size_t)c->bdat_left;
			pos += take;
			c->bdat_left -= take;
			if (c->bdat_left)
				break;
			messages += (unsigned long)c->bdat_last;
			bdat_messages += (unsigned long)c->bdat_last;
			r = "250 2.0.0 Ok: chunk received\r\n";
			goto reply;
		}
		char *nl = memchr(c->in + pos, '\n', c->len - pos);
		if (!nl)
			break;
		char *line = c->in + pos;
		size_t l = (size_t)(nl - line) + 1;
		pos += l;
		if (c->data_mode) {
			if (l == 3 && line[0] == '.') {
				c->data_mode = 0;
				messages++;
				r = "250 2.0.0 Ok: queued\r\n";
			}
		} else if (!strncasecmp(line, "EHLO", 4)) {
			r = chunking ? "250-sink\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-8BITMIME\r\n"
				       "250-SMTPUTF8\r\n250 SIZE 104857600\r\n"
				     : "250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
				       "250 SIZE 104857600\r\n";
		} else if (chunking && !strncasecmp(line, "BDAT ", 5)) {
			char *end;
			c->bdat_left = strtoull(line + 5, &end, 10);
			c->bdat_last = !strncasecmp(end, " LAST", 5);
			if (c->bdat_left)
				continue;
			messages += (unsigned long)c->bdat_last;
			bdat_messages += (unsigned long)c->bdat_last;
			r = "250 2.0.0 Ok: chunk received\r\n";
		} else if (!strncasecmp(line, "DATA", 4)) {
			c->data_mode = 1;
			r = "354 go ahead\r\n";
		} else if (!strncasecmp(line, "QUIT", 4)) {
			r = "221 bye\r\n";
			quit = 1;
		} else {
			r = "250 2.0.0 Ok\r\n";
		}
reply:
		if (r) {
			size_t rl = strlen(r);
			memcpy(out + *olen, r, rl);
			*olen += rl;
		}
		if (*olen > 60000 || quit)
			break;
	}
	memmove(c->in, c->in + pos, c->len - pos);
	c->len -= pos;
	return quit;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct conn *c = s->data;
	(void)b;
	if (n < 0) {
		conn_close(c);
		return;
	}
	c->len += (size_t)n;
	static char out[65536];
	for (;;) {
		size_t olen = 0;
		int quit = process(c, out, &olen);
		if (olen)
			reply(&c->tcp, out, olen);
		if (quit) {
			conn_close(c);
			return;
		}
		if (olen <= 60000)
			break;
	}
}

static void on_conn(uv_stream_t *server, int status)
{
	if (status < 0)
		return;
	struct conn *c = calloc(1, sizeof *c);
	uv_tcp_init(loop, &c->tcp);
	c->tcp.data = c;
	c->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	uv_poll_init(loop, &c->timer_poll, c->tfd);
	c->timer_poll.data = c;
	c->open_handles = 2;
	uv_poll_start(&c->timer_poll, UV_READABLE, on_timer);
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	conns_total++;
	if (++conns_now > conns_max)
		conns_max = conns_now;
	reply(&c->tcp, "220 sink ESMTP\r\n", 16);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void write_stats(uv_timer_t *t)
{
	(void)t;
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", stats_path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f, "messages %lu\nbdat_messages %lu\nconnections_total %lu\nconnections_max %lu\n",
		messages, bdat_messages, conns_total, conns_max);
	fclose(f);
	rename(tmp, stats_path);
}

int main(int argc, char **argv)
{
	if (argc != 4 && !(argc == 5 && !strcmp(argv[4], "data-only"))) {
		fprintf(stderr, "usage: sink PORT DELAY_MS STATSFILE [data-only]\n");
		return 64;
	}
	chunking = argc == 4;
	delay_ms = atoi(argv[2]);
	stats_path = argv[3];
	loop = uv_default_loop();
	uv_tcp_t server;
	struct sockaddr_in sa;
	uv_ip4_addr("127.0.0.1", atoi(argv[1]), &sa);
	uv_tcp_init(loop, &server);
	if (uv_tcp_bind(&server, (struct sockaddr *)&sa, 0) || uv_listen((uv_stream_t *)&server, 512, on_conn)) {
		perror("sink: listen");
		return 1;
	}
	uv_timer_t stats;
	uv_timer_init(loop, &stats);
	uv_timer_start(&stats, write_stats, 0, 50);
	return uv_run(loop, UV_RUN_DEFAULT);
}
