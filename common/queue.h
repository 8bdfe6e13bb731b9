/*
 * queue.h - the queue store: one file per accepted message in SPOOL.
 *
 * Owns: the on-disk format of a queued message (envelope header +
 * message bytes), the commit protocol that makes a message durable, the
 * per-recipient status updates, and the startup scan.  The protocol and
 * format are documented in the files that own them (qstore.h has
 * the list: store.c the layout, qrecord.c the format, qwriter.c the
 * commit protocol).
 *
 * Thread use: a store handle is read-only after store_open() but for its
 * dirsync, which locks itself, so qwriter_commit(), store_mark() and
 * store_remove() may run on worker threads while the loop thread writes
 * new messages.
 *
 * The store never logs (util.h ERRORS): a failure is a struct err, and
 * what the log should hear of otherwise is returned too: store_open's
 * notes, store_news(), the walk's troubles, the counts of
 * store_clean_tmp() and store_walk_counts().  The daemon says them.
 */
#ifndef OUTBOX_QUEUE_H
#define OUTBOX_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

#define QID_LEN 16

/* Status of one recipient, one character in the queue file. */
#define RCPT_PENDING 'Q'
#define RCPT_SENT 'D'
#define RCPT_FAILED 'F'
#define RCPT_BOUNCING 'B'	/* failed; the report about it is not yet queued */
#define RCPT_RELAYED 'R'	/* taken by a relay that does not offer DSN, and the
				 * sender asked NOTIFY=SUCCESS: the "relayed" notice
				 * about it is not yet queued (then D) */

/* What the sender asked to be told (RFC 3461 NOTIFY), per recipient;
 * 0: not given (the defaults: failures and delays are reported). */
#define NOTIFY_NEVER 0x1
#define NOTIFY_SUCCESS 0x2
#define NOTIFY_FAILURE 0x4
#define NOTIFY_DELAY 0x8
/* RFC 3461 RET, per message. */
enum dsn_ret { RET_UNSET, RET_FULL, RET_HDRS };

/* Envelope flags. */
#define ENV_8BITMIME 0x1
#define ENV_SMTPUTF8 0x2

struct rcpt {
	char *addr;
	char status;
	off_t status_off;	/* offset of the status byte in the file */
	unsigned notify;	/* NOTIFY_*, 0 when not given */
	char *orcpt;		/* ORCPT as given ("rfc822;" then xtext, as it goes
				 * upstream unchanged), or NULL */
};

struct envelope {
	double arrival;		/* wall clock, seconds */
	long uid;		/* submitting user */
	unsigned flags;		/* ENV_* */
	off_t flags_off;	/* offset of the flags line (decode only) */
	char *sender;		/* "" for the null sender <> */
	enum dsn_ret ret;	/* RET=, RET_UNSET when not given */
	char *envid;		/* ENVID as given (xtext), or NULL */
	struct rcpt *rcpt;
	size_t nrcpt;
};

void envelope_init(struct envelope *env);
void envelope_free(struct envelope *env);
void envelope_add_rcpt(struct envelope *env, const char *addr);
size_t envelope_pending(const struct envelope *env);

/* Header encoding; decode also checks every field.  body_off receives
 * the offset of the first message byte. */
int qrec_encode(const struct envelope *env, struct buf *out, struct err *e);
int qrec_decode(const char *p, size_t len, struct envelope *env, size_t *body_off,
		struct err *e);
bool qid_valid(const char *id);
/* The 16 hex digits of an ID are a 64-bit number: the index keeps that. */
uint64_t qid_value(const char *id);
void qid_format(uint64_t v, char id[QID_LEN + 1]);
/* The ID of the report about message orig's attempt number tries
 * (qrecord.c BOUNCES), and whether an ID is one. */
void qid_bounce(const char *orig, unsigned tries, char id[QID_LEN + 1]);
bool qid_is_bounce(uint64_t id);

/* ---- names and buckets ----
 * A message lives in queue/XX/NAME: XX is its bucket, two hex digits
 * from a hash of the ID (QBUCKETS of them, made when first needed), and
 * NAME is the ID alone until its first deferral, then ID.NEXT.TRIES:
 * the wall-clock second of the next try (8 hex digits) and the number
 * of attempts so far; either with .H appended while the message is held
 * (outbox hold).  So the start-up index reads names only. */
#define QBUCKETS 256
#define QNAME_MAX (QID_LEN + 1 + 8 + 1 + 5 + 2 + 1)
unsigned qid_bucket(const char *id);
void qname_format(char name[QNAME_MAX], const char *id, uint32_t next_try, unsigned tries);
/* A queue file name: its ID, next try and tries (0 for a bare ID); a
 * held name (.H) parses as the same name unheld. */
bool qname_parse(const char *name, char id[QID_LEN + 1], uint32_t *next_try, unsigned *tries);
bool qname_held(const char *name);
/* Add or remove the .H of a name. */
void qname_set_held(char name[QNAME_MAX], bool held);
/* The mark a name ends in: 'H' held, 'B' bouncing (a report about some
 * of its recipients is being queued), or 0; set one (0: none). */
char qname_mark(const char *name);
void qname_set_mark(char name[QNAME_MAX], char mark);

/* The directories under SPOOL (parents first) and their modes; SPOOL
 * itself is SPOOL_MODE. */
#define SPOOL_MODE 0710	/* the group passes (to pickup/), does not list */
struct spool_dir {
	const char *name;
	mode_t mode;
};
extern const struct spool_dir spool_layout[];	/* ends with name NULL */

#define STORE_NOTES_MAX 4

struct store {
	char *spool;
	char *tmp_dir;		/* SPOOL/tmp: messages being received */
	char *queue_dir;	/* SPOOL/queue: committed messages */
	char *corrupt_dir;	/* SPOOL/corrupt: files the scan could not read */
	int lock_fd;
	struct dirsync *dirsync;	/* directory fsyncs of queue/ and its buckets */
	uint64_t last_id;	/* the last ID made (qid.c UNIQUE); atomic */
	/* What store_open could go on without (a pid not written, a
	 * bucket not made, a directory not set-group-ID): warnings. */
	struct err notes[STORE_NOTES_MAX];
	unsigned nnotes;
};

/* Create the layout under spool if needed; with lock, take the
 * single-daemon lock (fails if another outboxd holds it). */
int store_open(struct store *s, const char *spool, bool lock, struct err *e);
void store_close(struct store *s);
/* The pid of the outboxd holding spool's lock: 0 when none does, -1
 * when it cannot be told (no right to read the lock file). */
long store_daemon_pid(const char *spool);
/* A new ID, never one this store made or (in the daemon, seeded by
 * store_open) one of a message queued before; any thread (qid.c). */
void store_new_id(struct store *s, char id[QID_LEN + 1]);
/* New IDs come after what changed at that time (qid.c UNIQUE). */
struct timespec;
void qid_seed(struct store *s, const struct timespec *changed);

/* Writing one message: begin (tmp file + header), write the message
 * bytes, then commit (durable) or abort (nothing left behind). */
struct qwriter {
	int fd;
	char id[QID_LEN + 1];
	char *tmp_path;
	char *queue_path;	/* queue/XX/ID */
	char *queue_dir;	/* queue/XX */
	unsigned bucket;
	struct dirsync *dirsync;	/* the store's, not owned */
	bool header_written;	/* the header has left the pending buffer */
	struct buf pending;	/* written at the next flush */
	uint64_t size;		/* message bytes, without the header */
	unsigned flags;		/* ENV_*; may be changed until commit */
	off_t flags_off;
	int error;		/* errno of the first failed write, or 0 */
	off_t written;		/* file offset after the last flush */
	bool reused;		/* writing over a spare file (spares.c) */
	bool open_failed;	/* error is from creating the file */
	const struct store *store;	/* the store's spares and tmp/ */
};

int qwriter_begin(struct store *s, const struct envelope *env, struct qwriter *w,
		  struct err *e);
/* The same with a given ID (made by store_new_id), not a new one. */
int qwriter_begin_as(struct store *s, const struct envelope *env, const char *id,
		     struct qwriter *w, struct err *e);
/* Is a message with this ID queued (under any name)? */
bool store_has(const struct store *s, const char *id);
/* Blocking: make the names in message id's bucket durable (an fsync of
 * the bucket, shared with the commits running). */
int store_sync_bucket(const struct store *s, const char *id, struct err *e);
/* Append message bytes: they wait in memory (no I/O here, so the loop
 * thread may call it) until qwriter_flush() or the commit. */
void qwriter_write(struct qwriter *w, const void *p, size_t n);
/* WRITE_CHUNK octets or more wait: time to flush. */
bool qwriter_flush_due(const struct qwriter *w);
/* Blocking: create the file if it is not yet, write what waits; an
 * error sticks in the writer and fails the commit.  For a thread-pool
 * thread, while nobody else touches w. */
void qwriter_flush(struct qwriter *w);
/* Blocking: flush, fsync, rename into queue/, fsync queue/.  Safe to run
 * on a worker thread.  On failure the tmp file is removed. */
int qwriter_commit(struct qwriter *w, struct err *e);
void qwriter_abort(struct qwriter *w);
void qwriter_free(struct qwriter *w);

/* Read a queued message's envelope; *body_off as in qrec_decode.  name
 * is the file's name as the caller knows it (qname_format); when no
 * such file exists the bucket is searched for the ID under another
 * name, and name is updated to the one found.  With fd non-NULL the
 * open file is returned (for status updates and reading the body);
 * otherwise it is closed. */
int store_load(const struct store *s, char name[QNAME_MAX], struct envelope *env,
	       size_t *body_off, int *fd, uint64_t *size, struct err *e);
/* A queue file that cannot be read as one: moved to corrupt/ (kept for
 * a human, never deleted).  0 when moved, -1 when not; either way said
 * gets the line to log (with why). */
int store_quarantine(const struct store *s, const char *name, const char *why, struct err *said);
/* Does a failed store_load() mean the file itself is bad (quarantine
 * it), rather than a passing trouble (EIO, no memory or descriptors)? */
bool store_load_error_is_permanent(int err);
/* Record a recipient's final status durably (pwrite + fdatasync). */
int store_mark(int fd, const struct rcpt *r, char status, struct err *e);
/* The same without the fdatasync, for several updates then one sync. */
int store_set_status(int fd, const struct rcpt *r, char status, struct err *e);
/* A deferred message's next try and tries go into its name (a rename in
 * its bucket: atomic, and not synced, for a lost rename only brings the
 * try forward); name becomes the new one. */
int store_note_retry(const struct store *s, char name[QNAME_MAX], uint32_t next_try,
		     unsigned tries, struct err *e);
/* Remove a message whose recipients are all done: its file (of size
 * octets) becomes a spare for a later commit of this store when it is
 * small, its bytes overwritten with zeros at once (spares.c SPARE FILES). */
int store_remove(const struct store *s, const char *name, uint64_t size, struct err *e);
/* Operator actions, durable before they return (the bucket is fsynced):
 * hold or release a message that no worker has (name becomes the new
 * name), or delete one. */
int store_set_held(const struct store *s, char name[QNAME_MAX], bool held, struct err *e);
int store_set_mark(const struct store *s, char name[QNAME_MAX], char mark, struct err *e);
int store_delete(const struct store *s, const char *name, struct err *e);
/* The last reply of each deferred recipient (qdefer.c has the file):
 * reasons[i] for env->rcpt[i], NULL for those not deferred.  Not
 * synced; removed with the message. */
void store_note_reasons(const struct store *s, const char *id, const struct envelope *env,
			const char *const *reasons, const char *relay);
/* Has message id had its "still trying" report ([queue] delay_warning)?
 * The mark is defer/XX/ID.warned, removed with the message. */
bool store_warned(const struct store *s, const char *id);
void store_note_warned(const struct store *s, const char *id);
/* The summary report (bounce.c) that covers message id's failures of
 * attempt number `attempt` (0: its delay report): written and synced
 * (file and directory) before the report is committed, so that after
 * a crash those recipients are not reported again when that report is
 * in the queue.  defer/XX/ID.report holds "REPORT-ID ATTEMPT"; a later
 * summary replaces it; removed with the message.  store_report_of is
 * false unless the mark is for that attempt. */
int store_note_report(const struct store *s, const char *id, unsigned attempt, const char *report_id,
		      struct err *e);
bool store_report_of(const struct store *s, const char *id, unsigned attempt, char out[QID_LEN + 1]);
/* The last reply noted for addr of message id, or NULL; free() it.
 * addr "@relay" gives the upstream the attempt reached. */
char *store_reason(const struct store *s, const char *id, const char *addr);
/* Blocking, any thread: fsync each bucket that spares left since its
 * last fsync, so that commits may rewrite them instead of creating
 * files (spares.c SPARE FILES).  The number of buckets fsynced. */
int store_ripen_spares(const struct store *s);

/* News for the log, from any thread (dirsync.c NEWS): false when there
 * is none; else *out says it, out->sys the fsync's errno (an error) or
 * 0 (its directory's fsync works again). */
bool store_news(const struct store *s, struct err *out);

/* Tests: the function that fsyncs queue/ (NULL: fsync), to inject
 * faults. */
void store_set_sync(struct store *s, int (*sync)(int fd, void *arg), void *arg);

/* Is there room for a new message of need octets, leaving min_free
 * free on the spool's file system ([queue] min_free)?  *avail gets the
 * octets free (to the daemon's user). */
bool store_has_room(const struct store *s, uint64_t min_free, uint64_t need, uint64_t *avail);
/* Did a store operation fail for want of room (ENOSPC, EDQUOT) or of a
 * working disk (EIO)?  Then new mail is refused with 452 4.3.1. */
bool store_error_is_storage(int err);

/* Start-up, before any commit: remove leftovers in tmp/; the number of
 * unacknowledged partial messages among them (spares are not counted). */
size_t store_clean_tmp(struct store *s);

/* The start-up walk of the queue, for the indexer thread while the
 * daemon already takes new mail: every queued message once, by name
 * only (no file is opened).  Files of the old flat layout (queue/ID)
 * are moved into their buckets first (link, fsync the bucket, unlink:
 * the message always has a durable name); names that are no queue file
 * are moved to corrupt/.  Messages committed during the walk may be
 * returned too. */
struct qfound {
	uint64_t id;		/* qid_value() */
	uint32_t next_try;	/* 0: never tried */
	uint16_t tries;
	bool held;
	bool bouncing;
};
struct store_walk;
struct store_walk *store_walk_begin(struct store *s, struct err *e);
enum walk_step {
	WALK_END,	/* every message has been returned */
	WALK_FOUND,	/* *out is one */
	WALK_MOVED,	/* a step of the upgrade was done */
	WALK_UPGRADED,	/* the flat layout is moved: *note says how many (info) */
	WALK_TROUBLE,	/* *note says what went wrong with a file or bucket (an
			 * error); the walk goes on */
};
/* Call until WALK_END. */
enum walk_step store_walk_next(struct store_walk *w, struct qfound *out, struct err *note);
/* What the walk did: messages moved from the flat layout, files
 * quarantined. */
void store_walk_counts(const struct store_walk *w, size_t *moved, size_t *quarantined);
void store_walk_end(struct store_walk *w);

#endif
