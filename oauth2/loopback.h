/*
 * loopback.h - where a browser login's redirect arrives (RFC 8252
 * section 7.3): a listener on 127.0.0.1 on a port the kernel picks, and
 * standard input, on which a user whose browser runs elsewhere pastes the
 * address it was sent to (which fails to load there).  The first of the
 * two to bring a redirect wins.
 *
 * Invariants: only 127.0.0.1 is listened on; a request is read to
 * LOOPBACK_REQUEST_MAX octets within LOOPBACK_READ_S seconds, else the
 * connection is dropped and the wait goes on; a request for anything
 * but GET / is answered 404 (a browser asks for /favicon.ico); the page
 * a browser gets quotes nothing it sent.  Blocking poll(2): this is a
 * tool's, never the daemon's.
 */
#ifndef OUTBOX_OAUTH2_LOOPBACK_H
#define OUTBOX_OAUTH2_LOOPBACK_H

#include <stdbool.h>
#include <stddef.h>

#include "../common/util.h"

#define LOOPBACK_REQUEST_MAX 8192
#define LOOPBACK_READ_S 5

struct loopback {
	int fd;			/* the listener */
	int port;
	int in;			/* standard input while it may still bring a line, else -1 */
	struct buf line;	/* what came on it so far */
};

/* Listen on 127.0.0.1:0; in is the descriptor pasted addresses come on
 * (-1: none).  0 or -1 with e. */
int loopback_open(struct loopback *l, int in, struct err *e);
void loopback_close(struct loopback *l);

/* The next redirect before deadline (now_real() seconds): its query
 * (after '?', before '#'; free it) and the browser's connection, to be
 * answered with loopback_answer (-1 when it was pasted).  NULL with e at
 * the deadline. */
char *loopback_next(struct loopback *l, double deadline, int *conn, struct err *e);

/* Answer the browser (conn from loopback_next; -1 does nothing) with a
 * short page saying text (ours, never the request's), then close it. */
void loopback_answer(int conn, bool ok, const char *text);

/* The value of key in query, percent-decoded ('+' is a space): 1, 0 when
 * absent, -1 when longer than n - 1 or holding a NUL or control octet. */
int query_get(const char *query, const char *key, char *out, size_t n);

#endif
