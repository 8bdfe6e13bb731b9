/*
 * queue.c - the queue store.
 *
 * LAYOUT under SPOOL (owned by the daemon's user):
 *   lock      flock()ed by the running outboxd: one daemon per spool;
 *             it holds that daemon's pid
 *   tmp/      messages being written, and spare files (below); anything
 *             here at start-up was never acknowledged, or is a spare,
 *             and is removed
 *   queue/XX/ committed messages, one file each, in QBUCKETS buckets
 *             named by two hex digits of a hash of the queue ID (as
 *             Postfix's hash_queue_depth and OpenSMTPD's queue/xx/), so
 *             that no directory holds more than a few thousand names
 *             with a million queued; made at the daemon's start
 *   corrupt/  queue files the start-up walk or a worker could not read
 *             (kept for a human, never deleted)
 *   pickup/   the pickup directory (tmp/, new/, bad/, and taking/: files
 *             being taken, outboxd's alone; daemon/pickup.c)
 *
 * QUEUE ID: 16 upper-case hex digits: 8 of the arrival second, 5 of the
 * microsecond, 3 of a sequence; IDs sort by arrival and are unique
 * across restarts (qid.c).
 *
 * FILE NAME: the ID, until the message is first deferred; then
 * ID.NEXT.TRIES (the wall-clock second of the next try, 8 hex digits,
 * and the attempts so far, decimal); either with .H appended while an
 * operator holds the message (outbox hold: that rename, and the one of
 * release, is fsynced, for it is the operator's word).  The deferral renames the file in
 * its bucket without a sync: a rename within one directory is atomic,
 * and a power cut that loses it only brings the next try forward.  So
 * start-up learns the whole schedule from the names (a walk of the
 * directories, no file opened, no inode read: a stat per file costs six
 * times the walk on a cold cache), and the envelope is read when a
 * worker first takes the message.
 *
 * FILE FORMAT: a text header, then the message exactly as it will be
 * relayed (CRLF line endings, not dot-stuffed):
 *
 *   outbox-queue 1\n
 *   arrival 1732700000.123456\n
 *   uid 1000\n                    (-1: submitted over TCP, user unknown)
 *   flags 8bitmime=0 smtputf8=0\n  fixed width: set at commit time
 *   from <a@example.org>\n        ("<>" for the null sender)
 *   rcpt Q <b@example.net>\n      one line per recipient; the status
 *   ...                           character Q (pending), D (delivered),
 *   end\n                         B (bouncing) or F (failed) is updated
 *                                 in place
 *
 * BOUNCES are queued in this order (daemon/bounce.c), so that a crash
 * anywhere neither loses a report nor queues it twice: the failed
 * recipients are marked B (fdatasync) and the file's name gets .B
 * (fsync of the bucket); the report is committed under an ID that is a
 * function of the message's ID and tries (qid_bounce), so a second
 * commit of it finds the first (EEXIST); then B becomes F and the .B
 * goes.  A .B name found at start-up is finished the same way before
 * any report is handed to the workers (scheduler.c).
 *   <message bytes>
 *
 * Every address in the header passed addr_check(), so it has no
 * control characters and the line structure cannot be forged.
 *
 * COMMIT PROTOCOL (Postfix-style; nothing is acknowledged before step 5):
 *   1. create tmp/ID with O_EXCL (or take a spare, below), write header
 *      and message (a message under WRITE_CHUNK waits in memory and
 *      steps 1-5 all run in qwriter_commit, on a thread-pool thread);
 *   2. fsync(tmp/ID)                     - the bytes are on disk (a spare
 *                                         is truncated to its new length
 *                                         first);
 *   3. the bucket queue/XX exists durably: the daemon makes every
 *      bucket at start, fsyncs each new one and then queue/ (their
 *      names) before it listens (adopt_buckets); a bucket it could not
 *      make then is made at its first commit, fsynced, and queue/
 *      fsynced before any message in it is acknowledged (bucket_ready);
 *   4. renameat2(tmp/ID, queue/XX/ID, RENAME_NOREPLACE)
 *                                         (link + unlink where the file
 *                                         system lacks it);
 *   5. fsync(queue/XX)                    - the name is on disk; commits
 *                                         into one bucket at the same
 *                                         time share one fsync that
 *                                         started after their renames
 *                                         (group commit);
 *   6. only now reply 250 / exit 0.
 * A crash before 4 leaves a tmp file (removed at start-up, never
 * acknowledged); a crash between 4 and 5 may lose the name, but nothing
 * was acknowledged yet; after 5 the message survives power loss.
 *
 * UPGRADE from the flat layout (queue/ID, before buckets): at start the
 * walk links each such file into its bucket, fsyncs the buckets, and
 * only then unlinks the flat names, so a message has a durable name at
 * every moment; a flat name whose bucket name exists already (a crash
 * in the middle) is a second name of the same message and is unlinked.
 *
 * STATUS UPDATES: a recipient's final result is one byte written with
 * pwrite() at its recorded offset, then fdatasync(); a one-byte write
 * cannot tear.  When no recipient is pending the file leaves its bucket.  A
 * crash after the upstream's 250 but before the status byte is synced
 * means that recipient is sent again: the only duplicate allowed.
 *
 * SPARE FILES: a finished message's file is not unlinked but renamed to
 * tmp/spare.N, and step 1 of a later commit rewrites it (then truncates
 * it to its new length) instead of creating a file.  Allocating an inode
 * on ext4 walks every recently freed one (on a file system without a
 * journal, each freed in the last five minutes), which made a busy
 * queue's creates cost more than their fsyncs; reuse avoids the free and
 * the allocation.  INVARIANT: a spare is rewritten only after an fsync
 * of its bucket that began after its rename out of it succeeded.  The
 * next commit into that bucket does one, but with QBUCKETS buckets that
 * takes some hundred commits, so store_ripen_spares() fsyncs the
 * buckets spares left (the delivery workers call it when they go idle
 * and every few dozen messages); up to SPARE_MAX are kept, each of at
 * most SPARE_SIZE_MAX octets, lest spares fill the disk;
 * before that a crash could bring back its old queue/ name, holding the
 * new message's bytes under the old ID.  At most SPARE_MAX are kept (the
 * rest are unlinked); they are removed at start-up with the rest of tmp/.
 * WHAT IS DELIVERED IS GONE: right after its rename a spare's bytes are
 * overwritten with zeros (not synced; one that cannot be is unlinked),
 * so no file in the spool holds a finished message's text while the
 * spare waits.  Zeros rather than a truncation: the blocks stay
 * allocated and written, so the commit that reuses the spare costs what
 * it did (a truncated spare made a commit 20 % slower, measured with
 * commit/remove rounds of 300 messages of 2 and 40 KB on ext4).  A kill
 * between the rename and the overwrite leaves the bytes in tmp/, which
 * start-up clears; a power cut that loses the rename but keeps the
 * zeros brings back a queue file of zeros, which a worker moves to
 * corrupt/ (its recipients were all done).
 */
#include "queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "address.h"
#include "log.h"

#define QFILE_MAGIC "outbox-queue 1\n"
#define ARRIVAL_MAX 253402300799.0	/* the end of year 9999: a header that says later is corrupt */
#define SPARE_MAX 1024	/* a spare waits for its bucket's next fsync (store_ripen_spares) */
#define SPARE_SIZE_MAX (64 * 1024)	/* larger files are unlinked, not kept */
#define SPARE_PREFIX "spare."
#define WRITE_CHUNK (64 * 1024)
#define QHEADER_MAX (32 * 1024 * 1024)	/* 100000 recipients ([queue] max_recipients) fit */

void envelope_init(struct envelope *env)
{
	memset(env, 0, sizeof *env);
}

void envelope_free(struct envelope *env)
{
	for (size_t i = 0; i < env->nrcpt; i++)
		free(env->rcpt[i].addr);
	free(env->rcpt);
	free(env->sender);
	envelope_init(env);
}

void envelope_add_rcpt(struct envelope *env, const char *addr)
{
	env->rcpt = xrealloc(env->rcpt, (env->nrcpt + 1) * sizeof *env->rcpt);
	env->rcpt[env->nrcpt].addr = xstrdup(addr);
	env->rcpt[env->nrcpt].status = RCPT_PENDING;
	env->rcpt[env->nrcpt].status_off = -1;
	env->nrcpt++;
}

size_t envelope_pending(const struct envelope *env)
{
	size_t n = 0;
	for (size_t i = 0; i < env->nrcpt; i++)
		n += env->rcpt[i].status == RCPT_PENDING;
	return n;
}

/* The flags line has a fixed width so that commit can rewrite it in
 * place once the message body has been seen. */
#define FLAGS_FMT "flags 8bitmime=%c smtputf8=%c\n"

static void encode_flags(unsigned flags, struct buf *out)
{
	buf_printf(out, FLAGS_FMT, flags & ENV_8BITMIME ? '1' : '0',
		   flags & ENV_SMTPUTF8 ? '1' : '0');
}

static bool status_valid(char c)
{
	return c == RCPT_PENDING || c == RCPT_SENT || c == RCPT_FAILED || c == RCPT_BOUNCING;
}

int qrec_encode(const struct envelope *env, struct buf *out, struct err *e)
{
	if (!env->sender || (*env->sender && addr_check(env->sender, e) < 0))
		return err_set(e, "bad sender");
	if (env->nrcpt == 0)
		return err_set(e, "no recipients");
	buf_adds(out, QFILE_MAGIC);
	buf_printf(out, "arrival %.6f\nuid %ld\n", env->arrival, env->uid);
	encode_flags(env->flags, out);
	buf_printf(out, "from <%s>\n", env->sender);
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct rcpt *r = &env->rcpt[i];
		if (addr_check(r->addr, e) < 0 || !status_valid(r->status))
			return err_set(e, "bad recipient %zu", i);
		buf_printf(out, "rcpt %c <%s>\n", r->status, r->addr);
	}
	buf_adds(out, "end\n");
	return 0;
}

/* Next header line [p, nl); returns NULL at the end of input. */
static const char *next_line(const char *p, const char *end, size_t *len)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	if (!nl)
		return NULL;
	*len = (size_t)(nl - p);
	return nl + 1;
}

/* "<addr>" of exactly n octets into a fresh string; NULL if malformed. */
static char *decode_addr(const char *p, size_t n, bool allow_null)
{
	if (n < 2 || p[0] != '<' || p[n - 1] != '>' || n - 2 > ADDR_MAX)
		return NULL;
	char *a = xstrndup(p + 1, n - 2);
	if (strlen(a) != n - 2 || (*a ? addr_check(a, NULL) < 0 : !allow_null)) {
		free(a);
		return NULL;
	}
	return a;
}

static int decode_flags(const char *p, size_t n, unsigned *flags)
{
	static const char pat[] = "8bitmime=? smtputf8=?";
	if (n != sizeof pat - 1)
		return -1;
	*flags = 0;
	for (size_t i = 0; i < n; i++) {
		if (pat[i] != '?') {
			if (p[i] != pat[i])
				return -1;
		} else if (p[i] == '1') {
			*flags |= i < 12 ? ENV_8BITMIME : ENV_SMTPUTF8;
		} else if (p[i] != '0') {
			return -1;
		}
	}
	return 0;
}

/* Parse "KEY rest" with rest of form checked by the caller. */
static bool line_key(const char *line, size_t len, const char *key, const char **rest, size_t *rlen)
{
	size_t k = strlen(key);
	if (len <= k || memcmp(line, key, k) != 0 || line[k] != ' ')
		return false;
	*rest = line + k + 1;
	*rlen = len - k - 1;
	return true;
}

static int decode_number(const char *p, size_t n, double *out)
{
	char tmp[40], *end;
	if (n == 0 || n >= sizeof tmp || strspn(p, "-0123456789.") < n)
		return -1;
	memcpy(tmp, p, n);
	tmp[n] = '\0';
	errno = 0;
	*out = strtod(tmp, &end);
	return (*end || errno) ? -1 : 0;
}

int qrec_decode(const char *p, size_t len, struct envelope *env, size_t *body_off, struct err *e)
{
	const char *start = p, *end = p + len, *line, *rest;
	size_t l, rl;
	double num;
	envelope_init(env);
	size_t mlen = strlen(QFILE_MAGIC);
	if (len < mlen || memcmp(p, QFILE_MAGIC, mlen) != 0)
		return err_set(e, "not an outbox queue file (bad magic)");
	p += mlen;
#define NEXT() do { line = p; if (!(p = next_line(p, end, &l))) goto truncated; } while (0)
	NEXT();
	if (!line_key(line, l, "arrival", &rest, &rl) || decode_number(rest, rl, &num) < 0 || num < 0
	    || num > ARRIVAL_MAX)
		goto bad;
	env->arrival = num;
	NEXT();
	if (!line_key(line, l, "uid", &rest, &rl) || decode_number(rest, rl, &num) < 0
	    || num < -1 || num > 4294967295.0 || num != (double)(long)num)
		goto bad;
	env->uid = (long)num;
	NEXT();
	if (!line_key(line, l, "flags", &rest, &rl) || decode_flags(rest, rl, &env->flags) < 0)
		goto bad;
	env->flags_off = line - start;
	NEXT();
	if (!line_key(line, l, "from", &rest, &rl) || !(env->sender = decode_addr(rest, rl, true)))
		goto bad;
	for (;;) {
		NEXT();
		if (l == 3 && memcmp(line, "end", 3) == 0)
			break;
		if (!line_key(line, l, "rcpt", &rest, &rl) || rl < 3 || !status_valid(rest[0])
		    || rest[1] != ' ')
			goto bad;
		char *a = decode_addr(rest + 2, rl - 2, false);
		if (!a)
			goto bad;
		envelope_add_rcpt(env, a);
		free(a);
		env->rcpt[env->nrcpt - 1].status = rest[0];
		env->rcpt[env->nrcpt - 1].status_off = rest - start;
	}
#undef NEXT
	if (env->nrcpt == 0)
		goto bad;
	*body_off = (size_t)(p - start);
	return 0;
truncated:
	envelope_free(env);
	return err_set(e, "queue file header is truncated");
bad:
	envelope_free(env);
	return err_set(e, "malformed queue file header near offset %zu", (size_t)(line - start));
}

void qname_format(char name[QNAME_MAX], const char *id, uint32_t next_try, unsigned tries)
{
	if (tries == 0)
		snprintf(name, QNAME_MAX, "%.*s", QID_LEN, id);
	else
		snprintf(name, QNAME_MAX, "%.*s.%08X.%u", QID_LEN, id, next_try,
			 tries > 65535 ? 65535 : tries);
}

char qname_mark(const char *name)
{
	size_t n = strlen(name);
	if (n >= QID_LEN + 2 && name[n - 2] == '.' && (name[n - 1] == 'H' || name[n - 1] == 'B'))
		return name[n - 1];
	return 0;
}

void qname_set_mark(char name[QNAME_MAX], char mark)
{
	if (qname_mark(name))
		name[strlen(name) - 2] = '\0';
	if (mark && strlen(name) + 2 < QNAME_MAX) {
		size_t n = strlen(name);
		name[n] = '.';
		name[n + 1] = mark;
		name[n + 2] = '\0';
	}
}

bool qname_held(const char *name)
{
	return qname_mark(name) == 'H';
}

void qname_set_held(char name[QNAME_MAX], bool held)
{
	if (held)
		qname_set_mark(name, 'H');
	else if (qname_held(name))
		qname_set_mark(name, 0);
}

bool qname_parse(const char *held_name, char id[QID_LEN + 1], uint32_t *next_try, unsigned *tries)
{
	char name[QNAME_MAX];
	if (strlen(held_name) >= QNAME_MAX)
		return false;
	strcpy(name, held_name);
	qname_set_mark(name, 0);
	size_t n = strlen(name);
	const char *hex = "0123456789ABCDEF";
	if (n < QID_LEN || strspn(name, hex) < QID_LEN)
		return false;
	*next_try = 0;
	*tries = 0;
	if (n > QID_LEN) {	/* .NEXT.TRIES, exactly as qname_format writes it */
		const char *t = name + QID_LEN + 10;
		if (name[QID_LEN] != '.' || n < QID_LEN + 11 || n > QNAME_MAX - 3
		    || strspn(name + QID_LEN + 1, hex) != 8 || name[QID_LEN + 9] != '.'
		    || strspn(t, "0123456789") != strlen(t) || t[0] == '0')
			return false;
		unsigned long v = strtoul(t, NULL, 10);
		if (v == 0 || v > 65535)
			return false;
		*next_try = (uint32_t)strtoul(name + QID_LEN + 1, NULL, 16);
		*tries = (unsigned)v;
	}
	memcpy(id, name, QID_LEN);
	id[QID_LEN] = '\0';
	return true;
}

/* ---- the directory fsyncs ----
 * One slot per bucket, and SLOT_QUEUE for queue/ itself (which gets the
 * names of new buckets).  In a slot, `renamed` counts names made in or
 * taken out of its directory; a commit whose rename was number n is
 * durable once an fsync of that directory that began after rename n
 * has succeeded (`synced` >= n).  A commit waits for an fsync already
 * running only if that one began after its rename (`covers`);
 * otherwise it runs its own at once instead of queueing behind one
 * that cannot help it.  So commits at the same moment share fsyncs
 * (group commit) and none waits for more than one.  The spare files
 * live here too: their reuse waits on the counter of the bucket they
 * left.
 *
 * A FAILED FSYNC STICKS.  Linux reports a writeback error to fsync()
 * once; a later fsync of the same file returns 0 although the entries
 * were never written (PostgreSQL's "fsyncgate").  So a failure marks
 * every rename so far that no earlier fsync covered as lost (`bad_upto`:
 * those commits fail, their spares are forgotten), fsyncs that began
 * before it prove nothing (`epoch`), and the slot takes no commit
 * (`error`) until dirsync_recover() has opened the directory anew and
 * an fsync of it succeeded; the other buckets go on.  One mutex guards
 * every slot. */

#define SLOT_QUEUE QBUCKETS
#define NSLOTS (QBUCKETS + 1)

struct spare {
	bool used;
	unsigned name;		/* tmp/spare.NAME */
	unsigned slot;		/* the bucket it left */
	uint64_t after;		/* reusable once that slot's synced >= after */
};

struct dirslot {
	uint64_t renamed;
	uint64_t synced;
	uint64_t covers;	/* the highest rename a running (or done) fsync covers */
	uint64_t bad_upto;	/* renames up to here not known durable when one failed */
	unsigned busy;		/* fsyncs running */
	unsigned epoch;		/* bumped by every failure */
	int fd;			/* open on the directory; -1 while a bucket is not made */
	int error;		/* errno of a failed fsync, until recovery */
};

struct dirsync {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	const char *queue_dir;	/* the store's */
	struct dirslot slot[NSLOTS];
	int (*sync)(int fd, void *arg);	/* fsync; a test may inject faults */
	void *sync_arg;
	struct spare spares[SPARE_MAX];
	unsigned spare_names;
};

static int plain_fsync(int fd, void *arg)
{
	(void)arg;
	return fsync(fd);
}

static char *slot_path(const struct dirsync *ds, unsigned slot)
{
	return slot == SLOT_QUEUE ? xstrdup(ds->queue_dir)
				  : xasprintf("%s/%02X", ds->queue_dir, slot);
}

static uint64_t dirsync_renamed(struct dirsync *ds, unsigned slot)
{
	pthread_mutex_lock(&ds->mu);
	uint64_t n = ++ds->slot[slot].renamed;
	pthread_mutex_unlock(&ds->mu);
	return n;
}

/* An fsync of the slot's directory failed (the caller holds mu). */
static void dirsync_failed(struct dirsync *ds, unsigned slot, int err)
{
	struct dirslot *sl = &ds->slot[slot];
	if (!sl->error) {
		char *path = slot_path(ds, slot);
		log_err("fsync %s: %s: no mail is queued there until an fsync of it succeeds again", path,
			strerror(err));
		free(path);
	}
	sl->error = err;
	sl->bad_upto = sl->renamed;
	sl->epoch++;
	for (int i = 0; i < SPARE_MAX; i++) {	/* their rename out may be lost too */
		struct spare *sp = &ds->spares[i];
		if (sp->used && sp->slot == slot && sp->after > sl->synced && sp->after <= sl->bad_upto)
			sp->used = false;	/* left in tmp/, removed at start-up */
	}
}

/* Wait until rename n of the slot is durable; -1 with errno when it may
 * not be. */
static int dirsync_wait(struct dirsync *ds, unsigned slot, uint64_t n)
{
	struct dirslot *sl = &ds->slot[slot];
	int rc = 0;
	pthread_mutex_lock(&ds->mu);
	for (;;) {
		if (sl->synced < n && (n <= sl->bad_upto || sl->error)) {
			rc = sl->error ? sl->error : EIO;
			break;
		}
		if (sl->synced >= n)
			break;
		if (sl->busy && sl->covers >= n) {	/* a running fsync covers us */
			pthread_cond_wait(&ds->cv, &ds->mu);
			continue;
		}
		uint64_t target = sl->renamed;
		unsigned epoch = sl->epoch;
		int fd = sl->fd;
		sl->busy++;
		if (target > sl->covers)
			sl->covers = target;
		pthread_mutex_unlock(&ds->mu);
		int r = ds->sync(fd, ds->sync_arg), saved = errno;
		pthread_mutex_lock(&ds->mu);
		sl->busy--;
		if (epoch == sl->epoch && r == 0 && target > sl->synced)
			sl->synced = target;
		if (epoch == sl->epoch && r < 0)
			dirsync_failed(ds, slot, saved);
		pthread_cond_broadcast(&ds->cv);
	}
	pthread_mutex_unlock(&ds->mu);
	errno = rc;
	return rc ? -1 : 0;
}

/* After a failed fsync: open the directory anew and fsync it; 0 once
 * the slot may take commits again (at once when nothing failed). */
static int dirsync_recover(struct dirsync *ds, unsigned slot)
{
	struct dirslot *sl = &ds->slot[slot];
	pthread_mutex_lock(&ds->mu);
	int err = sl->error;
	bool busy = sl->busy > 0;	/* an fsync on the old descriptor still runs */
	pthread_mutex_unlock(&ds->mu);
	if (!err)
		return 0;
	char *path = slot_path(ds, slot);
	int fd = busy ? -1 : open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || ds->sync(fd, ds->sync_arg) < 0) {
		if (fd >= 0)
			close(fd);
		free(path);
		errno = err;
		return -1;
	}
	pthread_mutex_lock(&ds->mu);
	if (sl->error && !sl->busy) {
		close(sl->fd);
		sl->fd = fd;
		sl->error = 0;
		log_info("fsync %s works again: mail is queued there again", path);
	} else {
		close(fd);	/* another commit recovered first */
	}
	pthread_mutex_unlock(&ds->mu);
	free(path);
	return 0;
}

/* Step 3 of the commit: the bucket exists and its name is durable. */
static int bucket_ready(struct dirsync *ds, unsigned b, struct err *e)
{
	pthread_mutex_lock(&ds->mu);
	bool made = ds->slot[b].fd >= 0;
	pthread_mutex_unlock(&ds->mu);
	if (made)
		return dirsync_recover(ds, b) < 0 ? err_sys(e, "fsync of queue bucket %02X failed "
							 "earlier and does not work yet", b) : 0;
	char *path = slot_path(ds, b);
	int fd = -1, rc = -1;
	if (dirsync_recover(ds, SLOT_QUEUE) < 0)
		err_sys(e, "fsync %s failed earlier and does not work yet", ds->queue_dir);
	else if (mkdir(path, 0700) < 0 && errno != EEXIST)
		err_sys(e, "mkdir %s", path);
	else if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		err_sys(e, "open %s", path);
	else if (ds->sync(fd, ds->sync_arg) < 0)
		err_sys(e, "fsync %s", path);
	else if (dirsync_wait(ds, SLOT_QUEUE, dirsync_renamed(ds, SLOT_QUEUE)) < 0)
		err_sys(e, "fsync %s", ds->queue_dir);
	else
		rc = 0;
	pthread_mutex_lock(&ds->mu);
	if (rc == 0 && ds->slot[b].fd < 0) {
		ds->slot[b].fd = fd;
		fd = -1;
	}
	pthread_mutex_unlock(&ds->mu);
	if (fd >= 0)
		close(fd);
	free(path);
	return rc;
}

void store_set_sync(struct store *s, int (*sync)(int fd, void *arg), void *arg)
{
	s->dirsync->sync = sync ? sync : plain_fsync;
	s->dirsync->sync_arg = arg;
}

/* Reserve a slot for a new spare; its index, or -1 when all are taken. */
static int spare_reserve(struct dirsync *ds, unsigned *name)
{
	int slot = -1;
	pthread_mutex_lock(&ds->mu);
	for (int i = 0; i < SPARE_MAX && slot < 0; i++) {
		if (!ds->spares[i].used) {
			slot = i;
			ds->spares[i] = (struct spare){ .used = true, .name = ds->spare_names++,
							.after = UINT64_MAX };
			*name = ds->spares[i].name;
		}
	}
	pthread_mutex_unlock(&ds->mu);
	return slot;
}

/* The spare's rename out of bucket b is done (ok) or failed (freed). */
static void spare_renamed(struct dirsync *ds, int i, unsigned b, bool ok)
{
	pthread_mutex_lock(&ds->mu);
	if (ok) {
		ds->spares[i].slot = b;
		ds->spares[i].after = ++ds->slot[b].renamed;
	} else {
		ds->spares[i].used = false;
	}
	pthread_mutex_unlock(&ds->mu);
}

/* Take a spare that is safe to rewrite (see SPARE FILES). */
static bool spare_take(struct dirsync *ds, unsigned *name)
{
	bool found = false;
	pthread_mutex_lock(&ds->mu);
	for (int i = 0; i < SPARE_MAX && !found; i++) {
		struct spare *sp = &ds->spares[i];
		if (sp->used && sp->after <= ds->slot[sp->slot].synced) {
			sp->used = false;
			*name = sp->name;
			found = true;
		}
	}
	pthread_mutex_unlock(&ds->mu);
	return found;
}

/* Make every spare whose bucket has not been fsynced since it left
 * reusable: one fsync of each such bucket (shared with the commits
 * running, as any).  A failure sticks as in any fsync of the slot. */
int store_ripen_spares(const struct store *s)
{
	struct dirsync *ds = s->dirsync;
	uint64_t want[QBUCKETS] = { 0 };
	pthread_mutex_lock(&ds->mu);
	for (int i = 0; i < SPARE_MAX; i++) {
		const struct spare *sp = &ds->spares[i];
		if (sp->used && sp->after != UINT64_MAX && sp->slot < QBUCKETS
		    && sp->after > ds->slot[sp->slot].synced && !ds->slot[sp->slot].error
		    && sp->after > want[sp->slot])
			want[sp->slot] = sp->after;
	}
	pthread_mutex_unlock(&ds->mu);
	int n = 0;
	for (unsigned b = 0; b < QBUCKETS; b++) {
		if (want[b]) {
			(void)dirsync_wait(ds, b, want[b]);	/* a failure is logged there */
			n++;
		}
	}
	return n;
}

/* ---- store ---- */

const struct spool_dir spool_layout[] = {
	{ "tmp", 0700 }, { "queue", 0700 }, { "corrupt", 0700 }, { "defer", 0700 }, { "rate", 0700 },
	{ "pickup", 02770 },
	{ "pickup/tmp", 02770 }, { "pickup/new", 02770 }, { "pickup/bad", 02750 },
	{ "pickup/taking", 0700 },
	{ NULL, 0 },
};

/* The lock file says which process holds it (for `sendmail -q`); a
 * failure to write it costs nothing else. */
static void write_pid(int fd)
{
	char pid[24];
	int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		log_warn("cannot write the pid into the spool's lock file: %s", strerror(errno));
}

long store_daemon_pid(const char *spool)
{
	char *lp = xasprintf("%s/lock", spool), buf[24] = "";
	int fd = open(lp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	long pid = -1;
	free(lp);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {	/* nobody holds it: no daemon */
		close(fd);
		return 0;
	}
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n > 0) {
		buf[n] = '\0';
		char *end;
		pid = strtol(buf, &end, 10);
		if (*end != '\n' || pid <= 1)
			pid = -1;
	}
	return pid;
}

/* The daemon's start: every bucket is made if missing (mkdir, and an
 * fsync of each new one) and opened, then queue/, which holds their
 * names, is fsynced once; so they are all ready before anything is
 * acknowledged, and a daemon that crashed between a mkdir and that
 * fsync left nothing acknowledged behind.  All mkdirs come before the
 * fsyncs, which then share one journal commit.  A bucket that cannot be
 * made now is left to bucket_ready at its first commit. */
static int adopt_buckets(struct dirsync *ds, struct err *e)
{
	int qfd = ds->slot[SLOT_QUEUE].fd;
	bool made[QBUCKETS] = { false };
	for (unsigned b = 0; b < QBUCKETS; b++) {
		char name[3];
		snprintf(name, sizeof name, "%02X", b);
		made[b] = mkdirat(qfd, name, 0700) == 0;
		if (!made[b] && errno != EEXIST)
			log_warn("mkdir %s/%s: %s (tried again at its first message)", ds->queue_dir,
				 name, strerror(errno));
	}
	for (unsigned b = 0; b < QBUCKETS; b++) {
		char name[3];
		snprintf(name, sizeof name, "%02X", b);
		int fd = openat(qfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && errno != ENOENT)
			return err_sys(e, "open %s/%s", ds->queue_dir, name);
		if (fd >= 0 && made[b] && ds->sync(fd, ds->sync_arg) < 0) {
			close(fd);
			return err_sys(e, "fsync %s/%s", ds->queue_dir, name);
		}
		ds->slot[b].fd = fd;
	}
	if (ds->sync(qfd, ds->sync_arg) < 0)
		return err_sys(e, "fsync %s", ds->queue_dir);
	return 0;
}

/* Every commit and rename of a run before changed its bucket: new IDs
 * come after the latest such change (qid.c UNIQUE). */
static void seed_ids(struct store *s)
{
	for (int i = 0; i < NSLOTS; i++) {
		struct stat st;
		if (s->dirsync->slot[i].fd >= 0 && fstat(s->dirsync->slot[i].fd, &st) == 0)
			qid_seed(s, &st.st_mtim);
	}
}

int store_open(struct store *s, const char *spool, bool lock, struct err *e)
{
	memset(s, 0, sizeof *s);
	s->lock_fd = -1;
	s->spool = xstrdup(spool);
	s->tmp_dir = xasprintf("%s/tmp", spool);
	s->queue_dir = xasprintf("%s/queue", spool);
	s->corrupt_dir = xasprintf("%s/corrupt", spool);
	int rc = ensure_dir(spool, SPOOL_MODE, e), qfd = -1;
	for (const struct spool_dir *sd = spool_layout; rc == 0 && sd->name; sd++) {
		char *p = xasprintf("%s/%s", spool, sd->name);
		struct stat st;
		rc = ensure_dir(p, sd->mode, e);
		if (rc == 0 && (sd->mode & S_ISGID) && stat(p, &st) == 0 && !(st.st_mode & S_ISGID))
			log_warn("%s is not set-group-ID: files dropped there keep their makers' groups "
				 "(systemd-tmpfiles --create outbox.conf makes it as it should be)", p);
		free(p);
	}
	if (rc == 0 && (qfd = open(s->queue_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		rc = err_sys(e, "open %s", s->queue_dir);
	if (rc == 0) {
		struct dirsync *ds = s->dirsync = xcalloc(1, sizeof *s->dirsync);
		pthread_mutex_init(&ds->mu, NULL);
		pthread_cond_init(&ds->cv, NULL);
		for (int i = 0; i < NSLOTS; i++)
			ds->slot[i].fd = -1;
		ds->slot[SLOT_QUEUE].fd = qfd;	/* the dirsync's now: it may reopen it */
		ds->queue_dir = s->queue_dir;
		ds->sync = plain_fsync;
	}
	if (rc == 0 && lock) {
		char *lp = xasprintf("%s/lock", spool);
		s->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (s->lock_fd < 0)
			rc = err_sys(e, "open %s", lp);
		else if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0)
			rc = err_sys(e, "spool %s is in use by another outboxd (lock %s)", spool, lp);
		else
			write_pid(s->lock_fd);
		free(lp);
	}
	if (rc == 0 && lock)
		rc = adopt_buckets(s->dirsync, e);
	if (rc == 0 && lock)
		seed_ids(s);
	if (rc < 0)
		store_close(s);
	return rc;
}

void store_close(struct store *s)
{
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	if (s->dirsync) {
		for (int i = 0; i < NSLOTS; i++)
			if (s->dirsync->slot[i].fd >= 0)
				close(s->dirsync->slot[i].fd);
		pthread_mutex_destroy(&s->dirsync->mu);
		pthread_cond_destroy(&s->dirsync->cv);
		free(s->dirsync);
	}
	free(s->spool);
	free(s->tmp_dir);
	free(s->queue_dir);
	free(s->corrupt_dir);
	memset(s, 0, sizeof *s);
	s->lock_fd = -1;
}

/* Step 1 on a spare file when one is safe to rewrite. */
static bool qwriter_open_spare(struct qwriter *w)
{
	unsigned name;
	if (!spare_take(w->store->dirsync, &name))
		return false;
	char *path = xasprintf("%s/" SPARE_PREFIX "%u", w->store->tmp_dir, name);
	w->fd = open(path, O_WRONLY | O_CLOEXEC);
	if (w->fd < 0) {
		(void)unlink(path);
		free(path);
		return false;
	}
	w->tmp_path = path;
	w->reused = true;
	return true;
}

/* Step 1: the file is opened only when the first octets must leave
 * memory, which for a message under WRITE_CHUNK is in qwriter_commit(),
 * off the loop thread: creating a file can take long (SPARE FILES). */
static int qwriter_open(struct qwriter *w)
{
	if (w->fd >= 0 || w->error)
		return w->fd >= 0 ? 0 : -1;
	if (qwriter_open_spare(w))
		return 0;
	w->tmp_path = xasprintf("%s/%s", w->store->tmp_dir, w->id);
	w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd >= 0)
		return 0;
	w->error = errno;
	w->open_failed = true;
	return -1;
}

int qwriter_begin(struct store *s, const struct envelope *env, struct qwriter *w, struct err *e)
{
	return qwriter_begin_as(s, env, NULL, w, e);
}

static char *msg_path(const struct store *s, const char *name);
static bool find_in_bucket(const struct store *s, const char *id, char name[QNAME_MAX]);

bool store_has(const struct store *s, const char *id)
{
	char name[QNAME_MAX], *path;
	struct stat st;
	snprintf(name, sizeof name, "%s", id);
	path = msg_path(s, name);
	bool found = lstat(path, &st) == 0 || find_in_bucket(s, id, name);
	free(path);
	return found;
}

int qwriter_begin_as(struct store *s, const struct envelope *env, const char *id,
		     struct qwriter *w, struct err *e)
{
	memset(w, 0, sizeof *w);
	w->fd = -1;
	buf_init(&w->pending);
	if (qrec_encode(env, &w->pending, e) < 0)
		return -1;
	w->flags = env->flags;
	w->flags_off = (off_t)(strstr(w->pending.data, "\nflags ") + 1 - w->pending.data);
	if (id)
		memcpy(w->id, id, QID_LEN + 1);
	else
		store_new_id(s, w->id);
	w->store = s;
	w->bucket = qid_bucket(w->id);
	w->queue_dir = xasprintf("%s/%02X", s->queue_dir, w->bucket);
	w->queue_path = xasprintf("%s/%s", w->queue_dir, w->id);
	w->dirsync = s->dirsync;
	return 0;
}

void qwriter_flush(struct qwriter *w)
{
	if (w->pending.len && qwriter_open(w) == 0 && !w->error
	    && write_all(w->fd, w->pending.data, w->pending.len) < 0)
		w->error = errno;
	w->written += (off_t)w->pending.len;
	if (w->pending.len)
		w->header_written = true;
	buf_reset(&w->pending);
}

void qwriter_write(struct qwriter *w, const void *p, size_t n)
{
	buf_add(&w->pending, p, n);
	w->size += n;
}

bool qwriter_flush_due(const struct qwriter *w)
{
	return w->pending.len >= WRITE_CHUNK;
}

/* Rewrite the fixed-width flags line: in the buffer while the header is
 * still there (small messages), else at its offset in the file. */
static void qwriter_write_flags(struct qwriter *w)
{
	struct buf line;
	buf_init(&line);
	encode_flags(w->flags, &line);
	if (!w->header_written)
		memcpy(w->pending.data + w->flags_off, line.data, line.len);
	else if (!w->error && pwrite(w->fd, line.data, line.len, w->flags_off) != (ssize_t)line.len)
		w->error = errno ? errno : EIO;
	buf_free(&line);
}

int qwriter_commit(struct qwriter *w, struct err *e)
{
	qwriter_write_flags(w);
	qwriter_flush(w);
	if (w->error) {
		errno = w->error;
		if (w->open_failed)
			err_sys(e, "create %s/%s", w->store->tmp_dir, w->id);
		else
			err_sys(e, "write %s", w->tmp_path);
	} else if (w->reused && ftruncate(w->fd, w->written) < 0) {	/* drop the old tail */
		err_sys(e, "truncate %s", w->tmp_path);
	} else if (fsync(w->fd) < 0) {
		err_sys(e, "fsync %s", w->tmp_path);
	} else if (close(w->fd) < 0) {
		w->fd = -1;
		err_sys(e, "close %s", w->tmp_path);
	} else if ((w->fd = -1, bucket_ready(w->dirsync, w->bucket, e) < 0)) {
		/* e says why */
	} else if (rename_noreplace(w->tmp_path, w->queue_path) < 0) {
		err_sys(e, "rename %s to %s", w->tmp_path, w->queue_path);
	} else if (dirsync_wait(w->dirsync, w->bucket, dirsync_renamed(w->dirsync, w->bucket)) < 0) {
		/* The name may not be durable: take the message back. */
		err_sys(e, "fsync %s", w->queue_dir);
		(void)unlink(w->queue_path);
	} else {
		return 0;
	}
	qwriter_abort(w);
	return -1;
}

void qwriter_abort(struct qwriter *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	if (w->tmp_path)
		(void)unlink(w->tmp_path);
	qwriter_free(w);
}

void qwriter_free(struct qwriter *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	free(w->tmp_path);
	free(w->queue_path);
	free(w->queue_dir);
	buf_free(&w->pending);
	w->tmp_path = w->queue_path = w->queue_dir = NULL;
}

/* Read the whole header of an open queue file into b: linear (each
 * read is searched once, with the 4 octets before it), and never more
 * than QHEADER_MAX, so a corrupt file of any size costs little. */
static int read_header(int fd, struct buf *b, const char *path, struct err *e)
{
	for (;;) {
		size_t from = b->len > 4 ? b->len - 4 : 0;
		buf_reserve(b, 65536);
		ssize_t r = pread(fd, b->data + b->len, 65536, (off_t)b->len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return err_sys(e, "read %s", path);
		}
		b->len += (size_t)r;
		b->data[b->len] = '\0';
		if (r == 0 || memmem(b->data + from, b->len - from, "\nend\n", 5))
			return 0;
		if (b->len > QHEADER_MAX) {
			err_set(e, "%s: no end of the queue file header in its first %d octets",
				path, QHEADER_MAX);
			errno = EBADMSG;
			return -1;
		}
	}
}

/* queue/XX/NAME */
static char *msg_path(const struct store *s, const char *name)
{
	return xasprintf("%s/%02X/%s", s->queue_dir, qid_bucket(name), name);
}

/* The file of id under another name in its bucket (its name changed
 * since the caller learnt it); false when there is none. */
static bool find_in_bucket(const struct store *s, const char *id, char name[QNAME_MAX])
{
	char *dir = xasprintf("%s/%02X", s->queue_dir, qid_bucket(id));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	bool found = false;
	char fid[QID_LEN + 1];
	uint32_t next;
	unsigned tries;
	if (!d && fd >= 0)
		close(fd);
	while (d && !found && (de = readdir(d)))
		if (strncmp(de->d_name, id, QID_LEN) == 0 && strlen(de->d_name) < QNAME_MAX
		    && qname_parse(de->d_name, fid, &next, &tries)) {
			memcpy(name, de->d_name, strlen(de->d_name) + 1);
			found = true;
		}
	if (d)
		closedir(d);
	free(dir);
	return found;
}

int store_load(const struct store *s, char name[QNAME_MAX], struct envelope *env,
	       size_t *body_off, int *fdp, uint64_t *size, struct err *e)
{
	char *path = msg_path(s, name), id[QID_LEN + 1];
	struct buf b;
	struct stat st;
	int rc = -1, flags = (fdp ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC;
	buf_init(&b);
	int fd = open(path, flags);
	memcpy(id, name, QID_LEN);
	id[QID_LEN] = '\0';
	if (fd < 0 && errno == ENOENT && find_in_bucket(s, id, name)) {
		free(path);
		path = msg_path(s, name);
		fd = open(path, flags);
	}
	if (fd < 0) {
		err_sys(e, "open %s", path);
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		err_sys(e, "stat %s", path);
		goto out;
	}
	if (read_header(fd, &b, path, e) < 0)
		goto out;
	if (qrec_decode(b.data, b.len, env, body_off, e) < 0) {
		errno = EBADMSG;
		goto out;
	}
	if (size)
		*size = (uint64_t)st.st_size - *body_off;
	rc = 0;
out:
	if (rc == 0 && fdp)
		*fdp = fd;
	else if (fd >= 0)
		close(fd);
	buf_free(&b);
	free(path);
	return rc;
}

bool store_has_room(const struct store *s, uint64_t min_free, uint64_t need, uint64_t *avail)
{
	struct statvfs sv;
	if (statvfs(s->spool, &sv) < 0)
		return true;	/* cannot tell: the write will say */
	*avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	return *avail >= min_free + need;
}

bool store_error_is_storage(int err)
{
	return err == ENOSPC || err == EDQUOT || err == EIO;
}

bool store_load_error_is_permanent(int err)
{
	switch (err) {
	case ENOENT: case EIO: case EINTR: case EAGAIN: case ENOMEM: case EMFILE: case ENFILE:
	case ENOSPC:
		return false;
	default:	/* EBADMSG (no queue file), EACCES, EISDIR, ELOOP, ... */
		return true;
	}
}

int store_set_status(int fd, const struct rcpt *r, char status, struct err *e)
{
	if (r->status_off < 0 || !status_valid(status))
		return err_set(e, "bad status update");
	if (pwrite(fd, &status, 1, r->status_off) != 1)
		return err_sys(e, "write status");
	return 0;
}

int store_mark(int fd, const struct rcpt *r, char status, struct err *e)
{
	if (store_set_status(fd, r, status, e) < 0)
		return -1;
	if (fdatasync(fd) < 0)
		return err_sys(e, "fdatasync");
	return 0;
}

int store_note_retry(const struct store *s, char name[QNAME_MAX], uint32_t next_try,
		     unsigned tries, struct err *e)
{
	char fresh[QNAME_MAX];
	qname_format(fresh, name, next_try, tries);
	char *from = msg_path(s, name), *to = msg_path(s, fresh);
	int rc = 0;
	if (strcmp(from, to) != 0 && rename(from, to) < 0)
		rc = err_sys(e, "rename %s to %s", from, to);
	else
		memcpy(name, fresh, sizeof fresh);
	free(from);
	free(to);
	return rc;
}

/* Make a rename or unlink in name's bucket durable. */
static int sync_bucket_of(const struct store *s, const char *name, struct err *e)
{
	unsigned b = qid_bucket(name);
	if (dirsync_wait(s->dirsync, b, dirsync_renamed(s->dirsync, b)) < 0)
		return err_sys(e, "fsync of queue bucket %02X", b);
	return 0;
}

int store_sync_bucket(const struct store *s, const char *id, struct err *e)
{
	return sync_bucket_of(s, id, e);
}

int store_set_held(const struct store *s, char name[QNAME_MAX], bool held, struct err *e)
{
	return store_set_mark(s, name, held ? 'H' : 0, e);
}

int store_set_mark(const struct store *s, char name[QNAME_MAX], char mark, struct err *e)
{
	char fresh[QNAME_MAX];
	memcpy(fresh, name, QNAME_MAX);
	qname_set_mark(fresh, mark);
	if (strcmp(fresh, name) == 0)
		return 0;
	char *from = msg_path(s, name), *to = msg_path(s, fresh);
	int rc = rename_noreplace(from, to) < 0 ? err_sys(e, "rename %s to %s", from, to) : 0;
	free(from);
	free(to);
	if (rc == 0) {
		memcpy(name, fresh, QNAME_MAX);
		rc = sync_bucket_of(s, name, e);
	}
	return rc;
}

/* ---- the last reply of each deferred recipient ----
 * SPOOL/defer/XX/ID holds, for a message that was deferred, one line per
 * recipient still waiting: the address, a tab, the reply of its last
 * attempt (one line, printable).  For outbox queue and show only: it is
 * rewritten at each deferral without a sync (a crash may lose or tear
 * it, and costs nothing else) and removed with the message. */

static char *reasons_path(const struct store *s, const char *id)
{
	return xasprintf("%s/defer/%02X/%.*s", s->spool, qid_bucket(id), QID_LEN, id);
}

void store_note_reasons(const struct store *s, const char *id, const struct envelope *env,
			const char *const *reasons, const char *relay)
{
	struct buf b;
	char safe[600];
	buf_init(&b);
	if (relay && *relay)	/* "@relay" cannot be an address */
		buf_printf(&b, "@relay\t%s\n", log_safe(relay, safe, sizeof safe));
	for (size_t i = 0; i < env->nrcpt; i++) {
		if (!reasons[i])
			continue;
		char line[600];
		buf_printf(&b, "%s\t%s\n", env->rcpt[i].addr, log_safe(reasons[i], line, sizeof line));
	}
	char *path = reasons_path(s, id), *dir = xasprintf("%s/defer/%02X", s->spool, qid_bucket(id));
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT && mkdir(dir, 0700) == 0)
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0) {
		(void)write_all(fd, b.data ? b.data : "", b.len);
		close(fd);
	}
	free(path);
	free(dir);
	buf_free(&b);
}

char *store_reason(const struct store *s, const char *id, const char *addr)
{
	char *path = reasons_path(s, id), *found = NULL, *line = NULL;
	FILE *f = fopen(path, "re");
	size_t cap = 0, alen = strlen(addr);
	ssize_t n;
	while (f && !found && (n = getline(&line, &cap, f)) > 0) {
		if ((size_t)n > alen + 1 && strncmp(line, addr, alen) == 0 && line[alen] == '\t') {
			line[strcspn(line, "\n")] = '\0';
			found = xstrdup(line + alen + 1);
		}
	}
	if (f)
		fclose(f);
	free(line);
	free(path);
	return found;
}

static void forget_reasons(const struct store *s, const char *name)
{
	if (strlen(name) <= QID_LEN)
		return;	/* never deferred: none kept */
	char *path = reasons_path(s, name), *warned = xasprintf("%s.warned", path);
	char *report = xasprintf("%s.report", path);
	(void)unlink(path);
	(void)unlink(warned);
	(void)unlink(report);
	free(path);
	free(warned);
	free(report);
}

bool store_warned(const struct store *s, const char *id)
{
	char *path = reasons_path(s, id), *warned = xasprintf("%s.warned", path);
	bool yes = access(warned, F_OK) == 0;
	free(path);
	free(warned);
	return yes;
}

void store_note_warned(const struct store *s, const char *id)
{
	char *path = reasons_path(s, id), *warned = xasprintf("%s.warned", path);
	int fd = open(warned, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	free(path);
	free(warned);
}

int store_note_report(const struct store *s, const char *id, unsigned attempt, const char *report_id,
		      struct err *e)
{
	char *path = reasons_path(s, id), *mark = xasprintf("%s.report", path);
	char *dir = xasprintf("%s/defer/%02X", s->spool, qid_bucket(id)), *top = xasprintf("%s/defer", s->spool);
	int rc = 0, fd = open(mark, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	bool made = false;
	if (fd < 0 && errno == ENOENT && mkdir(dir, 0700) == 0) {
		made = true;
		fd = open(mark, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	}
	char line[QID_LEN + 16];
	snprintf(line, sizeof line, "%.*s %u\n", QID_LEN, report_id, attempt);
	if (fd < 0)
		rc = err_sys(e, "open %s", mark);
	else if (write_all(fd, line, strlen(line)) < 0 || fsync(fd) < 0)
		rc = err_sys(e, "write %s", mark);
	if (fd >= 0)
		close(fd);
	if (rc == 0)
		rc = fsync_dir(dir, e);
	if (rc == 0 && made)
		rc = fsync_dir(top, e);
	free(path);
	free(mark);
	free(dir);
	free(top);
	return rc;
}

bool store_report_of(const struct store *s, const char *id, unsigned attempt, char out[QID_LEN + 1])
{
	char *path = reasons_path(s, id), *mark = xasprintf("%s.report", path);
	int fd = open(mark, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	char line[QID_LEN + 16] = "";
	ssize_t n = fd >= 0 ? read(fd, line, sizeof line - 1) : -1;
	if (fd >= 0)
		close(fd);
	free(path);
	free(mark);
	unsigned at;
	char nl;
	line[n > 0 ? n : 0] = '\0';
	if (n <= QID_LEN || line[QID_LEN] != ' ' || sscanf(line + QID_LEN, " %u%c", &at, &nl) != 2 || nl != '\n'
	    || at != attempt)
		return false;
	line[QID_LEN] = '\0';
	if (!qid_valid(line))
		return false;
	memcpy(out, line, QID_LEN + 1);
	return true;
}

int store_delete(const struct store *s, const char *name, struct err *e)
{
	char *path = msg_path(s, name);
	int rc = unlink(path) < 0 ? err_sys(e, "unlink %s", path) : sync_bucket_of(s, name, e);
	free(path);
	if (rc == 0)
		forget_reasons(s, name);
	return rc;
}

/* Overwrite a spare's bytes with zeros (SPARE FILES: its blocks stay
 * allocated, so the commit that reuses it writes no more metadata than
 * before); no sync: a read sees zeros at once. */
static int spare_wipe(const char *path)
{
	static const char zeros[WRITE_CHUNK];
	struct stat st;
	int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC), rc = -1;
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) == 0)
		for (off_t off = rc = 0; rc == 0 && off < st.st_size; off += WRITE_CHUNK) {
			size_t n = (size_t)(st.st_size - off < WRITE_CHUNK ? st.st_size - off : WRITE_CHUNK);
			rc = pwrite(fd, zeros, n, off) == (ssize_t)n ? 0 : -1;
		}
	close(fd);
	return rc;
}

int store_remove(const struct store *s, const char *name, uint64_t size, struct err *e)
{
	forget_reasons(s, name);
	char *path = msg_path(s, name);
	unsigned spare_name;
	int rc = 0, slot = size <= SPARE_SIZE_MAX ? spare_reserve(s->dirsync, &spare_name) : -1;
	if (slot >= 0) {
		char *spare = xasprintf("%s/" SPARE_PREFIX "%u", s->tmp_dir, spare_name);
		bool ok = rename(path, spare) == 0, gone = !ok && errno == ENOENT;
		if (ok && spare_wipe(spare) < 0) {	/* what is delivered is gone */
			(void)unlink(spare);
			ok = false;
			gone = true;
		}
		spare_renamed(s->dirsync, slot, qid_bucket(name), ok);
		free(spare);
		if (ok || gone)
			goto out;
	}
	if (unlink(path) < 0 && errno != ENOENT)
		rc = err_sys(e, "unlink %s", path);
out:
	free(path);
	return rc;
}

void store_clean_tmp(struct store *s)
{
	DIR *d = opendir(s->tmp_dir);
	struct dirent *de;
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		bool spare = strncmp(de->d_name, SPARE_PREFIX, strlen(SPARE_PREFIX)) == 0;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0 && !spare)
			log_info("removed unacknowledged partial message tmp/%s", de->d_name);
	}
	closedir(d);
}

/* Move dir/name to corrupt/ (another file there is never replaced);
 * the log line starts with label. */
static bool quarantine_at(const struct store *s, const char *dir, const char *name,
			  const char *label, const char *why)
{
	char *from = xasprintf("%s/%s", dir, name), *to = NULL;
	char safe[300], safe_name[300];
	log_safe(label, safe, sizeof safe);
	log_safe(name, safe_name, sizeof safe_name);
	int rc = rename_aside(from, s->corrupt_dir, name, &to);
	if (rc == 0)
		log_err("%s: unreadable queue file moved to corrupt/%s: %s", safe,
			strrchr(to, '/') + 1, why);
	else
		log_err("%s: unreadable queue file %s, and moving it to corrupt/ failed (%s): %s",
			safe, safe_name, strerror(errno), why);
	free(from);
	free(to);
	return rc == 0;
}

void store_quarantine(const struct store *s, const char *name, const char *why)
{
	char *dir = xasprintf("%s/%02X", s->queue_dir, qid_bucket(name));
	char id[QID_LEN + 1];
	snprintf(id, sizeof id, "%s", name);
	quarantine_at(s, dir, name, id, why);
	free(dir);
}

/* ---- the start-up walk ---- */

#define MOVE_CHUNK 1024	/* flat files linked before their buckets' fsyncs */

struct store_walk {
	struct store *s;
	int qfd;		/* queue/ */
	DIR *flat;		/* queue/ while files of the flat layout may be left */
	unsigned bucket;	/* the bucket being read; QBUCKETS at the end */
	DIR *dir;		/* it, open */
	size_t moved, quarantined;
};

static bool is_bucket_name(const char *n)
{
	return strlen(n) == 2 && strspn(n, "0123456789ABCDEF") == 2;
}

/* The entry's type, without following a link. */
static unsigned char entry_type(int dirfd, const struct dirent *de)
{
	struct stat st;
	if (de->d_type != DT_UNKNOWN)
		return de->d_type;
	if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return DT_UNKNOWN;
	return S_ISREG(st.st_mode) ? DT_REG : S_ISDIR(st.st_mode) ? DT_DIR : DT_UNKNOWN;
}

/* Give the file dirfd/name (a queue file not in its bucket) a name in
 * its bucket: 1 linked (the caller fsyncs the bucket, then unlinks the
 * old name), 0 its bucket has it already (the old name is unlinked
 * here: a second name of one message), -1 on error (logged). */
static int link_into_bucket(struct store_walk *w, int dirfd, const char *name)
{
	unsigned b = qid_bucket(name);
	char to[4 + QNAME_MAX];
	struct err e;
	if (bucket_ready(w->s->dirsync, b, &e) < 0) {
		log_err("%s: cannot move it into its bucket: %s", name, e.msg);
		return -1;
	}
	snprintf(to, sizeof to, "%02X/%s", b, name);
	if (linkat(dirfd, name, w->qfd, to, 0) == 0)
		return 1;
	if (errno == EEXIST) {
		(void)unlinkat(dirfd, name, 0);
		return 0;
	}
	log_err("%s: cannot move it into bucket %02X: %s", name, b, strerror(errno));
	return -1;
}

/* Fsync the buckets marked in touched; each entry of names whose bucket
 * is now durable loses its old name in dirfd. */
static void finish_moves(struct store_walk *w, int dirfd, const bool touched[QBUCKETS],
			 char (*names)[QNAME_MAX], size_t n)
{
	bool synced[QBUCKETS] = { false };
	struct dirsync *ds = w->s->dirsync;
	for (unsigned b = 0; b < QBUCKETS; b++)
		if (touched[b])
			synced[b] = dirsync_wait(ds, b, dirsync_renamed(ds, b)) == 0;
	for (size_t i = 0; i < n; i++) {
		if (!synced[qid_bucket(names[i])])
			continue;	/* both names stay; the next start finishes it */
		(void)unlinkat(dirfd, names[i], 0);
		w->moved++;
	}
}

/* UPGRADE: the next MOVE_CHUNK queue files directly in queue/ go into
 * their buckets; false when none is left. */
static bool move_flat(struct store_walk *w)
{
	char (*names)[QNAME_MAX] = xmalloc(MOVE_CHUNK * sizeof *names);
	bool touched[QBUCKETS] = { false };
	struct dirent *de = NULL;
	size_t n = 0;
	int fd = dirfd(w->flat);
	while (n < MOVE_CHUNK && (de = readdir(w->flat))) {
		char id[QID_LEN + 1];
		uint32_t next;
		unsigned tries;
		unsigned char type = entry_type(fd, de);
		if (de->d_name[0] == '.' || (type == DT_DIR && is_bucket_name(de->d_name)))
			continue;
		if (type != DT_REG || !qname_parse(de->d_name, id, &next, &tries)) {
			w->quarantined += quarantine_at(w->s, w->s->queue_dir, de->d_name,
							de->d_name, "not a queue file");
			continue;
		}
		if (link_into_bucket(w, fd, de->d_name) == 1) {
			touched[qid_bucket(id)] = true;
			memcpy(names[n++], de->d_name, strlen(de->d_name) + 1);
		}
	}
	finish_moves(w, fd, touched, names, n);
	free(names);
	if (de)
		return true;
	closedir(w->flat);
	w->flat = NULL;
	if (w->moved) {	/* the old names stay gone */
		struct dirsync *ds = w->s->dirsync;
		(void)dirsync_wait(ds, SLOT_QUEUE, dirsync_renamed(ds, SLOT_QUEUE));
		log_info("moved %zu messages from the flat queue/ into its buckets", w->moved);
	}
	return false;
}

struct store_walk *store_walk_begin(struct store *s, struct err *e)
{
	struct store_walk *w = xcalloc(1, sizeof *w);
	int fd = -1;
	w->s = s;
	w->qfd = open(s->queue_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->qfd < 0 || (fd = dup(w->qfd)) < 0 || !(w->flat = fdopendir(fd))) {
		err_sys(e, "open %s", s->queue_dir);
		if (fd >= 0)
			close(fd);
		if (w->qfd >= 0)
			close(w->qfd);
		free(w);
		return NULL;
	}
	return w;
}

/* Open the next bucket that exists; false after the last. */
static bool open_bucket(struct store_walk *w)
{
	for (; w->bucket < QBUCKETS; w->bucket++) {
		char name[3];
		snprintf(name, sizeof name, "%02X", w->bucket);
		int fd = openat(w->qfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0 && (w->dir = fdopendir(fd)))
			return true;
		if (fd >= 0)
			close(fd);
		if (errno != ENOENT)
			log_err("queue bucket %s/%s cannot be read, its messages wait for the "
				"next start: %s", w->s->queue_dir, name, strerror(errno));
	}
	return false;
}

/* One entry of the open bucket: true when it is a message to return. */
static bool walk_entry(struct store_walk *w, const struct dirent *de, struct qfound *out)
{
	char id[QID_LEN + 1], dir[8];
	uint32_t next;
	unsigned tries;
	snprintf(dir, sizeof dir, "%02X", w->bucket);
	if (de->d_name[0] == '.')
		return false;
	if (entry_type(dirfd(w->dir), de) != DT_REG || !qname_parse(de->d_name, id, &next, &tries)) {
		char *path = xasprintf("%s/%s", w->s->queue_dir, dir);
		w->quarantined += quarantine_at(w->s, path, de->d_name, de->d_name, "not a queue file");
		free(path);
		return false;
	}
	if (qid_bucket(id) != w->bucket) {	/* put here by hand: move it */
		bool touched[QBUCKETS] = { false };
		char names[1][QNAME_MAX];
		if (link_into_bucket(w, dirfd(w->dir), de->d_name) != 1)
			return false;
		touched[qid_bucket(id)] = true;
		memcpy(names[0], de->d_name, strlen(de->d_name) + 1);
		finish_moves(w, dirfd(w->dir), touched, names, 1);
	}
	out->id = qid_value(id);
	out->next_try = next;
	out->tries = (uint16_t)tries;
	out->held = qname_mark(de->d_name) == 'H';
	out->bouncing = qname_mark(de->d_name) == 'B';
	return true;
}

int store_walk_next(struct store_walk *w, struct qfound *out)
{
	if (w->flat && move_flat(w))
		return 2;
	for (;;) {
		if (!w->dir && !open_bucket(w))
			return 0;
		struct dirent *de = readdir(w->dir);
		if (!de) {
			closedir(w->dir);
			w->dir = NULL;
			w->bucket++;
			continue;
		}
		if (walk_entry(w, de, out))
			return 1;
	}
}

void store_walk_counts(const struct store_walk *w, size_t *moved, size_t *quarantined)
{
	*moved = w->moved;
	*quarantined = w->quarantined;
}

void store_walk_end(struct store_walk *w)
{
	if (!w)
		return;
	if (w->dir)
		closedir(w->dir);
	if (w->flat)
		closedir(w->flat);
	close(w->qfd);
	free(w);
}
