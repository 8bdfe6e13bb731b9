/*
 * mkqueue - test helper: put N messages of SIZE octets straight into a
 * spool's queue through the store's own encoder and names (without the
 * daemon), to test outboxd's start-up with a large queue.
 *
 *   mkqueue [--flat] [--deferred SECONDS] [--uid UID] SPOOL N SIZE
 *
 * --flat writes the layout of the release before buckets (queue/ID);
 * --deferred names each message as deferred once, due SECONDS from now;
 * --uid gives the submitting user (default 1000).
 * Nothing is fsynced: a fixture, not a commit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/queue.h"

static char *file_path(const struct store *s, const char *id, bool flat, long deferred)
{
	char name[QNAME_MAX];
	if (flat)
		return xasprintf("%s/%s", s->queue_dir, id);
	qname_format(name, id, (uint32_t)(now_real() + (double)deferred), deferred >= 0 ? 1 : 0);
	char *dir = xasprintf("%s/%02X", s->queue_dir, qid_bucket(id));
	(void)mkdir(dir, 0700);
	char *path = xasprintf("%s/%s", dir, name);
	free(dir);
	return path;
}

int main(int argc, char **argv)
{
	struct store s;
	struct err e;
	bool flat = false;
	long deferred = -1, uid = 1000;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--flat") == 0)
			flat = true;
		else if (strcmp(argv[i], "--deferred") == 0 && i + 1 < argc)
			deferred = atol(argv[++i]);
		else if (strcmp(argv[i], "--uid") == 0 && i + 1 < argc)
			uid = atol(argv[++i]);
		else
			break;
	}
	if (argc - i != 3) {
		fprintf(stderr, "usage: mkqueue [--flat] [--deferred SECONDS] [--uid UID] SPOOL N SIZE\n");
		return 64;
	}
	long n = atol(argv[i + 1]);
	size_t size = (size_t)atol(argv[i + 2]);
	char *body = malloc(size + 1);
	memset(body, 'x', size);
	if (size >= 2)
		memcpy(body + size - 2, "\r\n", 2);
	if (store_open(&s, argv[i], false, &e) < 0) {
		fprintf(stderr, "mkqueue: %s\n", e.msg);
		return 1;
	}
	for (long k = 0; k < n; k++) {
		struct envelope env;
		char rcpt[64];
		envelope_init(&env);
		env.arrival = now_real();
		env.uid = uid;
		env.sender = xstrdup("bulk@example.org");
		snprintf(rcpt, sizeof rcpt, "r%ld@example.net", k);
		envelope_add_rcpt(&env, rcpt);
		struct buf rec;
		char id[QID_LEN + 1];
		buf_init(&rec);
		store_new_id(&s, id);
		char *to = file_path(&s, id, flat, deferred);
		int fd = -1;
		if (qrec_encode(&env, &rec, &e) < 0) {
			fprintf(stderr, "mkqueue: %s\n", e.msg);
			return 1;
		}
		buf_add(&rec, body, size);
		if ((fd = open(to, O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0
		    || write_all(fd, rec.data, rec.len) < 0 || close(fd) < 0) {
			perror(to);
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
