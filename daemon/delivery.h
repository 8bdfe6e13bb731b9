/*
 * delivery.h - private to the delivery worker pool: delivery.c (the pool,
 * its worker threads and sessions), jobs.c (its job queue), attempt.c (one message's
 * attempt and its results) and transfer.c (the SMTP transactions on an
 * open session, with DATA or BDAT).  Nothing else includes it.
 *
 * Threads: a struct worker and the attempts it holds belong to its
 * thread; struct pool fields are guarded by pool.mu except d (loop
 * thread only).
 */
#ifndef OUTBOX_DELIVERY_H
#define OUTBOX_DELIVERY_H

#include "../common/smtp_client.h"
#include "outboxd.h"
#include "pool.h"

#define BODY_CHUNK (256 * 1024)	/* queue file octets read at a time */

struct attempt;

/* ---- the command queue (transfer.c) ----
 * Every command written to the upstream is queued with what its reply
 * means; replies are read in order and each is applied by the handler
 * of its kind.  Without PIPELINING a command is written and its reply
 * read before the next one is queued.  The queue lives as long as the
 * session. */
enum cmd_kind { C_RSET, C_MAIL, C_RCPT, C_DATA, C_DOT, C_BDAT };

struct expect {
	enum cmd_kind kind;
	struct attempt *a;	/* the message it belongs to (C_RSET: the one it precedes) */
	size_t rcpt;		/* C_RCPT: the recipient's index */
	bool last;		/* C_BDAT: BDAT ... LAST */
};

struct cmdq {
	struct buf out;		/* queued octets not yet written */
	struct expect *q;
	size_t head, n, cap;	/* q[head .. head+n) await their replies */
	bool open;		/* the server has (or, with replies outstanding, may
				 * have) a mail transaction open: RSET before MAIL */
	bool open_now;		/* the same, from the replies read so far */
};

struct job {
	char id[QID_LEN + 1];
	unsigned tries;		/* attempts before this one */
	uint32_t next_try;	/* as the file's name says (qname_format) */
	struct config *conf;	/* the configuration when it was handed out */
	struct job *next;
};

struct worker {
	struct pool *pool;
	uv_thread_t thread;
	int idx;
	struct smtp_client smtp;
	struct config *session_conf;	/* the config the open session was made with */
	struct tls_client tls;
	struct config *tls_conf;
	unsigned rnd_state;
	double last_used;	/* monotonic: end of the last delivery */
	char *chunk;		/* BODY_CHUNK octets read from a queue file */
	struct buf body;	/* encoded message octets (a BDAT chunk in the making) */
	struct cmdq cmdq;	/* the session's commands awaiting replies (transfer.c) */
	unsigned since_ripen;	/* messages since this worker last ripened spares */
};

struct pool {
	struct daemon *d;	/* loop-thread fields only; workers use store */
	const struct pool_hooks *hooks;	/* loop thread */
	_Atomic uint64_t sessions_opened;
	_Atomic uint64_t sessions_failed[ST_LOCAL + 1];
	const struct store *store;
	uv_mutex_t mu;
	uv_cond_t cv;
	struct job *head, *tail;
	size_t queued;		/* jobs between head and tail */
	struct delivery_result *results;
	bool stopping;
	bool ripening;		/* a worker runs store_ripen_spares() */
	size_t nworkers, running;
	struct worker *workers;
	uv_async_t async;
};

/* A recipient's outcome in one attempt. */
enum outcome { OUT_NONE, OUT_SENT, OUT_DEFERRED, OUT_BOUNCED };

struct rcpt_result {
	enum outcome state;	/* the first one set stays (set_result) */
	bool accepted;		/* its RCPT got 2xx in this attempt */
	char *why;		/* the reply or the local reason */
};

/* What happens to one message in one attempt. */
struct attempt {
	struct job *job;
	char name[QNAME_MAX];	/* the queue file's name (queue.c FILE NAME) */
	struct envelope env;
	int fd;
	size_t body_off;
	uint64_t size;
	struct rcpt_result *res;	/* one per envelope recipient */
	double started;
	/* the transaction on the wire (transfer.c) */
	bool mail_ok;		/* MAIL got 2xx */
	bool data_go;		/* DATA got 354 with recipients accepted: send the message */
	size_t taken;		/* recipients accepted */
};

/* A network or local failure (no reply code) leaves the session unusable. */
static inline bool session_broken(const struct smtp_client *s)
{
	return s->fail_text[0] && s->fail_code == 0;
}

/* jobs.c: the job queue (any thread) */
struct job *pop_job(struct pool *p, int wait_s, bool *timed_out);
void push_job(struct pool *p, struct job *j);
bool take_job(struct pool *p, const char *id);
size_t batch_share(struct pool *p, size_t max);
struct job *try_pop_job(struct pool *p);
void post_result(struct pool *p, const struct delivery_result *r);
void job_free(struct job *j);
void push_back_job(struct pool *p, struct job *j);

/* attempt.c */
void attempt_free(struct attempt *a);
bool attempt_load(struct worker *w, struct job *j, struct attempt *a);
void set_result(struct attempt *a, size_t i, enum outcome what, const char *why);
void set_all(struct attempt *a, enum outcome what, const char *why);
enum outcome outcome_of(enum smtp_stage st, int code);
void fail_from_session(struct attempt *a, const struct smtp_client *s);
void attempt_finish(struct worker *w, struct attempt *a);
bool attempt_fits(struct worker *w, struct attempt *a);
void attempt_close(struct worker *w, struct attempt *a, const struct job *caller_job);

/* transfer.c: deliver first (loaded, fits the upstream) on the open
 * session, then whatever else is queued for it; the caller keeps first's
 * job, jobs taken here are freed here. */
void cmdq_reset(struct cmdq *q);
void cmdq_free(struct cmdq *q);
/* RSET now (a session reused after waiting); false when it is broken. */
bool session_reset(struct worker *w);
bool chunking_usable(const struct worker *w, const struct config *c);
void transfer_chunked(struct worker *w, struct job *j, struct attempt *first);
void transfer_pipelined(struct worker *w, struct job *j, struct attempt *first);

#endif
