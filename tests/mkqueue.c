/*
 * mkqueue - test helper: put N messages of SIZE octets straight into a
 * spool's queue/ through the store's own encoder (without the daemon),
 * to test outboxd's start-up with a large queue.
 *
 *   mkqueue SPOOL N SIZE
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "../common/queue.h"

int main(int argc, char **argv)
{
	struct store s;
	struct err e;
	if (argc != 4) {
		fprintf(stderr, "usage: mkqueue SPOOL N SIZE\n");
		return 64;
	}
	long n = atol(argv[2]);
	size_t size = (size_t)atol(argv[3]);
	char *body = malloc(size + 1);
	memset(body, 'x', size);
	if (size >= 2)
		memcpy(body + size - 2, "\r\n", 2);
	if (store_open(&s, argv[1], false, &e) < 0) {
		fprintf(stderr, "mkqueue: %s\n", e.msg);
		return 1;
	}
	for (long i = 0; i < n; i++) {
		struct envelope env;
		char rcpt[64];
		envelope_init(&env);
		env.arrival = now_real();
		env.uid = 1000;
		env.sender = xstrdup("bulk@example.org");
		snprintf(rcpt, sizeof rcpt, "r%ld@example.net", i);
		envelope_add_rcpt(&env, rcpt);
		/* the store's own encoder; no fsync needed for a test fixture */
		struct buf rec;
		char id[QID_LEN + 1];
		buf_init(&rec);
		store_new_id(&s, id);
		char *to = xasprintf("%s/%s", s.queue_dir, id);
		int fd = -1;
		if (qrec_encode(&env, &rec, &e) < 0) {
			fprintf(stderr, "mkqueue: %s\n", e.msg);
			return 1;
		}
		buf_add(&rec, body, size);
		if ((fd = open(to, O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0
		    || write_all(fd, rec.data, rec.len) < 0 || close(fd) < 0) {
			perror("mkqueue");
			return 1;
		}
		free(to);
		buf_free(&rec);
		envelope_free(&env);
	}
	store_close(&s);
	free(body);
	return 0;
}
