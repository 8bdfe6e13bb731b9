/*
 * control_int.h - private to the control server's files, from the top
 * down: control.c (the listener: limits, the request line, its timers,
 * the verb), control_list.c (QUEUE and SHOW), control_act.c (FLUSH,
 * DELETE, HOLD, RELEASE, STATUS, METRICS and the actions that waited for
 * an attempt's end), control_conn.c (a connection's output, work, peer
 * and close: it calls none of the others).
 *
 * THREADS: a struct ctl belongs to the loop, except while its one work
 * item runs (ctl_work): then the thread may read the request's fields
 * and write c->chunk and the items, and the loop touches neither until
 * the item's done callback.  At most CONTROL_THREADS work items of all
 * connections run at once, so the intake's commits always find a free
 * thread of libuv's pool.  The thread never writes to the socket: the
 * loop sends what it made (ctl_send), and a listing's next batch is made
 * only once the client has read most of the last (back-pressure).
 */
#ifndef OUTBOXD_CONTROL_INT_H
#define OUTBOXD_CONTROL_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../common/queue.h"
#include "../common/util.h"
#include "control.h"
#include "index.h"
#include "operator.h"

#define CONTROL_THREADS 2
#define LIST_BATCH 64			/* messages a listing reads per work item */
#define CHUNK_MAX (64 * 1024)		/* a work item stops adding messages past this */

enum verb { V_QUEUE, V_SHOW, V_FLUSH, V_DELETE, V_HOLD, V_RELEASE, V_STATUS, V_METRICS };

/* One message the request names, or one of a listing's batch. */
struct item {
	uint64_t id;
	char name[QNAME_MAX];	/* its file's name when the request came */
	uint8_t state;		/* enum qstate then */
	uint16_t tries;
	uint32_t next_try;
	uint32_t uid;		/* the index's (QUID_UNKNOWN: read the file) */
	bool allowed;		/* the peer may see it */
	bool found;		/* it was in the index */
	struct op op;		/* an action on it (operator.h) */
};

#define ADMIN_CACHE 64		/* users whose admin check is remembered */
#define ADMIN_CACHE_S 10.0	/* for so long */

/* The server: its connections, the queue of work waiting for a thread. */
struct control {
	struct daemon *d;
	struct ctl *conns;
	size_t nconns;
	struct ctl *wait_head, *wait_tail;	/* work waiting for a thread */
	unsigned busy;				/* work items running */
	bool stopped;
	struct { long uid; bool admin; double at; } admins[ADMIN_CACHE];
};

struct ctl {
	uv_pipe_t pipe;
	uv_timer_t timer;
	struct control *srv;
	struct daemon *d;
	struct ctl *prev, *next;	/* the server's connections */
	long uid;
	bool admin;		/* root, outboxd's user or its group (ctl_check_admin) */
	enum verb verb;
	bool json;
	bool all;		/* FLUSH of every message the peer may act on */
	struct buf in;		/* the request line */
	bool have_request;
	int exit_code;
	/* output */
	struct buf out;		/* lines made on the loop, not yet sent */
	size_t queued;		/* octets handed to libuv, not yet written */
	double last_progress, deadline;
	bool ended;		/* "exit N" sent: close once written */
	bool closing;
	int open_handles;	/* the pipe and the timer until their close callbacks */
	void (*resume)(struct ctl *c);	/* the producer waiting for the client to read */
	/* work on the thread pool */
	uv_work_t req;
	void (*work)(struct ctl *c);	/* thread */
	void (*done)(struct ctl *c);	/* loop */
	void (*after_admin)(struct ctl *c);	/* ctl_with_admin's */
	bool work_busy, work_waiting;
	struct ctl *wnext;
	struct buf chunk;	/* output made by the thread */
	/* the request */
	struct item *items;
	size_t nitems, ipos;
	char arg0[64];		/* SHOW's argument, for its error line */
	/* a listing */
	qref cursor;		/* admin: the next entry of the index's array */
	uint64_t *ids;		/* a user: the IDs of their messages when asked */
	size_t nids, next_id;
	uint64_t total;
	size_t shown;
};

/* Lines: escaped (escape.h), "S TEXT\n" (S the stream: 1 out, 2 err, 0 the status). */
void ctl_put(struct buf *b, int stream, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Hand b's octets to libuv (b is emptied); a producer that finds
 * ctl_full() true sets c->resume and waits. */
void ctl_send(struct ctl *c, struct buf *b);
bool ctl_full(const struct ctl *c);
/* Close now (both handles; freed once no work item of it runs). */
void ctl_close(struct ctl *c);
/* The status line, then close once it is written. */
void ctl_end(struct ctl *c);
/* Run work on the pool (at most CONTROL_THREADS at once), then done on
 * the loop, unless the connection closed meanwhile. */
void ctl_work(struct ctl *c, void (*work)(struct ctl *), void (*done)(struct ctl *));
/* Thread: is the peer root, outboxd's user or in its group? */
bool ctl_check_admin(long uid);
/* Loop: c->admin set, then done(c): at once when the answer is known
 * (root, outboxd's user, or asked within ADMIN_CACHE_S), else after
 * ctl_check_admin on the pool. */
void ctl_with_admin(struct ctl *c, void (*done)(struct ctl *c));
/* The index's uid of the peer's messages; QUID_UNKNOWN when it can own
 * none (a uid the index keeps for its own marks). */
uint32_t ctl_peer_quid(const struct ctl *c);
/* May the peer see it: its uid in the index, or read from the file (thread). */
bool ctl_may_see(struct ctl *c, struct item *it);
/* The item of the message r, as the index has it now. */
void ctl_item_of(struct ctl *c, qref r, struct item *it);

/* control_list.c */
void ctl_start_queue(struct ctl *c);
void ctl_start_show(struct ctl *c);
void ctl_time_text(double t, char *out, size_t n);
const char *ctl_state_word(uint8_t state);
/* A JSON string of valid UTF-8 (controls \u-escaped, other octets U+FFFD). */
void ctl_json_str(struct buf *b, const char *s);
/* control_act.c */
void ctl_start_action(struct ctl *c, char **args, int nargs);
void ctl_start_status(struct ctl *c);
void ctl_do_metrics(struct ctl *c);

#endif
