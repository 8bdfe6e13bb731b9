/*
 * outboxd.h - the daemon's main context and the interfaces between its
 * parts (listeners, SMTP server sessions, the in-memory queue index).
 *
 * Invariant: all of struct daemon is touched only from the libuv loop
 * thread; work on other threads (fsync, delivery) gets copies and
 * reports back through libuv callbacks.  This is the only mutable state
 * of the daemon besides the logger's settings.
 */
#ifndef OUTBOXD_H
#define OUTBOXD_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../common/config.h"
#include "../common/queue.h"

#define MAX_SESSIONS 1000

/* One queued message as the daemon remembers it: small on purpose, the
 * envelope stays on disk until a worker needs it. */
struct qentry {
	char id[QID_LEN + 1];
	uint8_t state;		/* QE_* */
	uint16_t tries;
	uint32_t npending;	/* recipients not yet done */
	uint64_t size;
	double arrival;
	double next_try;
	struct qentry *hnext;	/* hash chain */
};

enum { QE_READY, QE_DEFERRED, QE_ACTIVE, QE_HELD };

struct queue_index {
	struct qentry **buckets;
	size_t nbuckets;
	size_t count;
};

void qindex_init(struct queue_index *q);
void qindex_free(struct queue_index *q);
struct qentry *qindex_add(struct queue_index *q, const char *id, const struct envelope *env,
			  uint64_t size);
struct qentry *qindex_find(const struct queue_index *q, const char *id);

struct session;
struct listener;

struct daemon {
	uv_loop_t *loop;
	struct config *conf;
	const char *conf_path;
	int verbose;
	struct store store;
	struct queue_index queue;
	char hostname[256];
	struct listener *listeners;
	struct session *sessions;	/* doubly linked, all live sessions */
	size_t nsessions;
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t grace;		/* shutdown grace period */
	bool stopping;
	uint64_t received;		/* messages accepted since start */
};

/* listen.c */
int listeners_start(struct daemon *d, struct err *e);
void listeners_stop(struct daemon *d);

/* smtp_session.c */
void session_accept(struct daemon *d, uv_stream_t *server, bool is_unix);
/* Close sessions with 421: those between commands now; with force also
 * those still receiving a message (a commit in flight always finishes). */
void sessions_shutdown(struct daemon *d, bool force);
/* Called when a session has gone; the daemon may finish stopping. */
void daemon_session_gone(struct daemon *d);

#endif
