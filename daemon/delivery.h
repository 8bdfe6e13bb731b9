/*
 * delivery.h - private to the delivery worker pool: delivery.c (the pool,
 * its worker threads and sessions), upstreams.c (a worker group and
 * queue per relay, routing and failover), jobs.c (the job queues),
 * attempt.c (one message's attempt and its results) and transfer.c (the
 * SMTP transactions on an open session, with DATA or BDAT).  Nothing
 * else includes it.
 *
 * Threads: a struct worker and the attempts it holds belong to its
 * thread; struct pool and struct upstream fields are guarded by pool.mu
 * except d (loop thread only).
 */
#ifndef OUTBOX_DELIVERY_H
#define OUTBOX_DELIVERY_H

#include "../common/smtp_client.h"
#include "outboxd.h"
#include "pool.h"
#include "rate.h"

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
	/* Its route (relay.h relay_route, indexes into conf->relays), set
	 * by the first worker that reads its sender, and the relay it is
	 * at: a connection-level failure moves it to the next. */
	bool routed;
	uint8_t nroute, hop;
	uint8_t route[RELAYS_MAX];
	struct job *next;
};

/* The relay a job is at (routed). */
static inline const struct relay *job_relay(const struct job *j)
{
	return j->conf->relays[j->route[j->hop]];
}

/* One relay's workers, its queue of jobs and its health (upstreams.c).
 * Known by the relay's name across reloads. */
struct upstream {
	struct upstream *next;
	char name[RELAY_NAME_MAX + 1];	/* "" for [relay] */
	struct config *conf;	/* the newest configuration with this relay (a reference) */
	const struct relay *relay;	/* in conf */
	struct job *head, *tail;
	size_t queued;
	uv_cond_t cv;		/* its workers wait here */
	size_t nworkers;	/* running */
	size_t want;		/* its relay's workers; 0 once removed: the rest leave */
	bool removed;		/* not in the configuration any more */
	double down_until;	/* wall clock: after a connection-level failure */
	char down_why[400];	/* that failure (without its hint), or the quota reply */
	unsigned failures;	/* such failures in a row: the backoff grows */
	struct worker *trying;	/* its trial session (upstreams.c), or NULL */
	uv_cond_t tried;	/* the trial's end: the workers waiting for it */
	double proven_at;	/* wall clock: a session last opened (its login worked) */
	/* OAuth2: the token endpoint refused the refresh token (tokens.h) */
	bool login_needed;
	double login_since;	/* wall clock */
	bool notified;		/* the postmaster was told (until it is up again) */
	bool notice_due;	/* ... and is to be, by the loop (upstreams_notices) */
	uint64_t sessions_opened;
	uint64_t sessions_failed[ST_LOCAL + 1];
	struct rate rate;	/* its max_rate */
	uint64_t rate_n, rate_per;	/* what rate was opened with */
};

struct worker {
	struct pool *pool;
	struct upstream *up;	/* the relay it works for */
	struct worker *next;	/* all of the pool's */
	bool exited;		/* its thread has returned (pool.mu): join it */
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
	bool login_needed;	/* the session failed for a dead refresh token (tokens.h) */
	unsigned quota_hold;	/* a quota reply came in this run: hold the relay back this long */
	char quota_reply[200];	/* (that reply) */
};

struct pool {
	struct daemon *d;	/* loop-thread fields only; workers use store */
	const struct pool_hooks *hooks;	/* loop thread */
	const struct store *store;
	uv_mutex_t mu;
	struct upstream *ups;	/* one per relay, and removed ones until their workers left */
	struct upstream *entry;	/* new jobs wait here: the first relay that takes any sender */
	size_t queued;		/* jobs in all queues */
	struct delivery_result *results;
	bool stopping;
	bool ripening;		/* a worker runs store_ripen_spares() */
	size_t nworkers;	/* workers wanted, all relays */
	size_t running;		/* threads running */
	struct worker *workers;
	int next_idx;
	uv_async_t async;
	struct token_watch *watches;	/* loop thread: the refresh token files' (relay_state.c) */
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

/* jobs.c: the job queues (any thread).  pop_job returns NULL when the
 * pool stops or the worker is one too many for its relay (it leaves). */
struct job *pop_job(struct worker *w, int wait_s, bool *timed_out);
void push_job(struct pool *p, struct upstream *up, struct job *j);
void push_job_locked(struct pool *p, struct upstream *up, struct job *j);
bool take_job(struct pool *p, const char *id);
size_t batch_share(struct worker *w, size_t max);
struct job *try_pop_job(struct worker *w);
void post_result(struct pool *p, const struct delivery_result *r);
void job_free(struct job *j);
void push_back_job(struct worker *w, struct job *j);

/* What to do about a provider's reply to AUTH ("535 5.7.139 ..."), or
 * NULL: the hint table in common/smtp_client.c (declared there too, in
 * smtp_client.h, once branch h-replies is merged). */
const char *smtp_auth_hint(const char *reply);

/* upstreams.c */
/* Make the upstreams match c's relays (start, loop thread): jobs
 * waiting anywhere go back to the entry, unrouted, under c. */
void upstreams_configure(struct pool *p, struct config *c);
/* Where j goes: routes it from env's sender if it is not yet; NULL
 * when it stays with w.  A job for elsewhere is the caller's to hand
 * on with push_job. */
struct upstream *upstream_for(struct worker *w, struct job *j, const char *sender);
/* w's session to its relay failed before any transaction: the relay
 * is down for a while; true when j moved on to its next relay (the
 * caller lets go of it), false when none is left (it is deferred). */
bool upstream_failed(struct worker *w, struct job *j);
void upstream_up(struct worker *w);
/* May j go at w's relay now?  ADMIT_MOVED: it went on to the next relay
 * of its route (the caller lets go of it); ADMIT_LATER: not before
 * *until (held back, down, or over max_rate), why says so.  A slot of
 * max_rate is taken when it may go; a wait of up to RATE_WAIT_S is
 * slept here. */
enum admit { ADMIT_GO, ADMIT_MOVED, ADMIT_LATER };
#define RATE_WAIT_S 2.0
enum admit upstream_admit(struct worker *w, struct job *j, double *until, char *why, size_t n);
/* The same for the next message of a run on an open session, without
 * waiting or moving: true (a slot taken) or false. */
bool upstream_admit_now(struct worker *w);
/* A quota or rate reply: the relay takes no message for hold seconds. */
void upstream_hold(struct worker *w, unsigned hold, const char *reply);
/* Loop thread: the relays whose postmaster notice is due (login needed),
 * each handed to send (the relay's label, the command to run, the
 * endpoint's answer) once, outside the lock. */
void upstreams_notices(struct pool *p, void (*send)(struct daemon *d, const char *relay, const char *command,
						     const char *why));
/* Loop thread: watch the refresh token file of each relay of c that has
 * one (again, after a reload), or stop. */
void token_watch_configure(struct pool *p, const struct config *c);
void token_watch_close(struct pool *p);
/* Loop thread: relay name's refresh token file changed: when its relay
 * waits for a login, its backoff ends (one trial session: a login).
 * True if so (the caller makes its mail due). */
bool upstreams_token_changed(struct pool *p, const char *name);
/* Loop thread: free the removed upstreams whose workers all left. */
void upstreams_reap(struct pool *p);
void upstreams_free(struct pool *p);

/* delivery.c: start one worker for up (pool.mu held) */
int worker_start(struct pool *p, struct upstream *up);

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
/* Not tried now: due again at until (its tries unchanged), why logged. */
void attempt_postpone(struct worker *w, struct attempt *a, double until, const char *why);

/* transfer.c: deliver first (loaded, fits the upstream) on the open
 * session, then whatever else is queued for it; the caller keeps first's
 * job, jobs taken here are freed here. */
void cmdq_reset(struct cmdq *q);
void cmdq_free(struct cmdq *q);
/* RSET now (a session reused after waiting); false when it is broken. */
bool session_reset(struct worker *w);
bool chunking_usable(const struct worker *w, const struct relay *r);
void transfer_chunked(struct worker *w, struct job *j, struct attempt *first);
void transfer_pipelined(struct worker *w, struct job *j, struct attempt *first);

#endif
