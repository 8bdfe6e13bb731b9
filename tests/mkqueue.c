/*
 * mkqueue - test helper: put N messages of SIZE octets straight into a
 * spool's queue/ through the store's own encoder and writer (without the
 * daemon), to test outboxd's start-up with a large queue.
 *
 *   mkqueue SPOOL N SIZE
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
		struct qwriter w;
		char rcpt[64];
		envelope_init(&env);
		env.arrival = now_real();
		env.uid = 1000;
		env.sender = xstrdup("bulk@example.org");
		snprintf(rcpt, sizeof rcpt, "r%ld@example.net", i);
		envelope_add_rcpt(&env, rcpt);
		if (qwriter_begin(&s, &env, &w, &e) < 0) {
			fprintf(stderr, "mkqueue: %s\n", e.msg);
			return 1;
		}
		qwriter_write(&w, body, size);
		/* no fsync needed for a test fixture: write and rename only */
		char *to = xasprintf("%s/%s", s.queue_dir, w.id);
		if (write_all(w.fd, w.pending.data, w.pending.len) < 0 || rename(w.tmp_path, to) < 0) {
			perror("mkqueue");
			return 1;
		}
		free(to);
		qwriter_free(&w);
		envelope_free(&env);
	}
	store_close(&s);
	free(body);
	return 0;
}
