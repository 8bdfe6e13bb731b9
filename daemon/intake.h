/*
 * intake.h - the one way into the queue.
 *
 * Every source of mail (an SMTP session on the socket or over TCP, and
 * later the pickup directory, bounces and the composer) hands its
 * message to these functions and commits nothing itself: intake_begin
 * checks and completes the envelope (arrival, submitting uid, SMTPUTF8
 * when an address needs it, a local sender through [senders]) and
 * writes the Received: line; intake_write holds the header section back
 * until it is whole (up to HEAD_MAX) and rewrites a local From: through
 * [senders] as well, so mail from root or a user leaves with an address
 * the provider accepts, whatever the way in; the source
 * streams the message with intake_write; intake_commit makes it durable
 * (queue.c COMMIT PROTOCOL, on the thread pool), and only then logs it,
 * adds it to the index and hands it to the scheduler.
 *
 * Invariants: a message is in the index only after its commit
 * succeeded; the caller's callback runs on the loop thread, after the
 * thread-pool work, and is the caller's cue to acknowledge (250, exit
 * 0); the struct intake may be freed in that callback.
 */
#ifndef OUTBOXD_INTAKE_H
#define OUTBOXD_INTAKE_H

#include <stdbool.h>
#include <uv.h>

#include "../common/queue.h"
#include "index.h"

struct config;
struct scheduler;

enum way_in { WAY_SOCKET, WAY_TCP, WAY_PICKUP, WAY_BOUNCE, WAY_LOCAL };
#define WAYS_IN (WAY_LOCAL + 1)

/* What the intake counts, for outbox status and the metrics. */
struct intake_counts {
	uint64_t received;		/* messages accepted since start */
	uint64_t received_by[WAYS_IN];	/* the same, by way in */
};

/* The intake's handle: what it takes mail with and where it puts it.
 * Loop thread only (the commit's thread gets copies in struct intake). */
struct intake_ctx {
	uv_loop_t *loop;
	struct store *store;
	struct config *const *conf;	/* the daemon's, now (SIGHUP changes it) */
	const char *hostname;		/* this host's, for the Received: line */
	struct queue_index *queue;	/* a committed message goes here ... */
	struct scheduler *sched;	/* ... and to the scheduler */
	struct intake_counts *counts;	/* bumped once a message is committed */
	bool spool_full;		/* new mail refused for want of room (intake_room) */
};

/* Where a message comes from, for its Received: line and the log. */
struct origin {
	enum way_in way;
	long uid;		/* the submitting user (SO_PEERCRED, a file's owner); -1 unknown */
	const char *login;	/* its login name, "" if unknown */
	const char *helo;	/* what an SMTP client called itself, "" if nothing */
	const char *peer;	/* a TCP client's address, "" otherwise */
	bool esmtp, smtputf8;	/* how an SMTP client spoke */
	const char *id;		/* the queue ID to use (pickup: taking/ID), NULL for a new one */
};

struct intake;
typedef void (*intake_cb)(struct intake *in, void *arg);

struct intake {
	struct intake_ctx *ic;
	enum way_in way;	/* counted once committed (outbox metrics) */
	struct qwriter w;
	const struct envelope *env;	/* the caller's, kept until the commit is done */
	char who[96];		/* for the log: "uid=1000" or "client=[addr]:port" */
	uv_work_t req;		/* the flush or commit on the thread pool */
	intake_cb cb;
	void *arg;
	/* Optional, on the commit's thread right after a successful commit
	 * and before the message is indexed (the pickup removes its file). */
	intake_cb after_commit;
	bool check_room;	/* [queue] min_free at the commit: every way in but reports */
	uint64_t min_free;	/* as when the message began */
	int rc;			/* of the commit: 0, or -1 with err (err.sys ENOSPC below min_free) */
	struct err err;
	struct buf head;	/* the header section, held back until it is whole */
	bool head_done;		/* it has gone to the writer */
};

/* Check and complete env (it must outlive the commit), open the queue
 * file and write the Received: line; -1 with e (e->sys the errno) when
 * the message cannot be taken. */
int intake_begin(struct intake_ctx *ic, struct intake *in, struct envelope *env,
		 const struct origin *o, struct err *e);
void intake_write(struct intake *in, const void *p, size_t n);
/* The envelope flags the body showed (ENV_8BITMIME), before the commit. */
void intake_add_flags(struct intake *in, unsigned flags);
/* Enough waits in memory: time to intake_flush. */
bool intake_flush_due(const struct intake *in);
/* Write what waits to the file on the thread pool, then cb (an error
 * sticks and fails the commit). */
void intake_flush(struct intake *in, intake_cb cb, void *arg);
/* Commit on the thread pool; on success log, index and schedule the
 * message; then cb, with in->rc telling which. */
void intake_commit(struct intake *in, intake_cb cb, void *arg);
void intake_abort(struct intake *in);

/* Room on the spool ([queue] min_free, SPEC "full disk").  The commit
 * fails with ENOSPC below min_free (but for reports, which it is kept
 * for); a way in checks before it takes a message too.  Each says when
 * the spool runs out of room and when it has room again, once each way
 * (ic->spool_full).  Loop thread. */
/* Is there room for need octets more (statvfs)? */
bool intake_room(struct intake_ctx *ic, uint64_t need);
/* What a check on the thread pool found (avail: octets free). */
void intake_room_seen(struct intake_ctx *ic, bool room, uint64_t avail);
/* A commit or write failed for want of room (store_error_is_storage). */
void intake_room_failed(struct intake_ctx *ic, const struct err *e);
/* After the commit's callback, or instead of a commit. */
void intake_free(struct intake *in);
static inline const char *intake_id(const struct intake *in)
{
	return in->w.id;
}

#endif
