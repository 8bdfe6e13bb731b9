/*
 * dirsync.c - the directory fsyncs of the queue store (qstore.h): group
 * commit, sticky failures, the spares' bookkeeping and the buckets made
 * at the daemon's start.
 *
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
 * every slot.
 *
 * NEWS: that a directory's fsync began failing, and that it works
 * again, is news for the log; the store does not log (qstore.h), so each
 * goes into a ring of NEWS_MAX (the oldest kept, later ones counted)
 * that the daemon empties with store_news().
 */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qstore.h"

#define SPARE_MAX 1024	/* a spare waits for its bucket's next fsync (store_ripen_spares) */
#define NSLOTS (QBUCKETS + 1)
#define NEWS_MAX 64

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
	struct {
		unsigned slot;
		int err;	/* the fsync's errno; 0: it works again */
	} news[NEWS_MAX];
	unsigned nnews;		/* in news[]; atomic for a look without mu */
	unsigned news_lost;	/* did not fit */
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

uint64_t dirsync_renamed(struct dirsync *ds, unsigned slot)
{
	pthread_mutex_lock(&ds->mu);
	uint64_t n = ++ds->slot[slot].renamed;
	pthread_mutex_unlock(&ds->mu);
	return n;
}

/* Note news about the slot (the caller holds mu). */
static void dirsync_news(struct dirsync *ds, unsigned slot, int err)
{
	unsigned n = ds->nnews;
	if (n == NEWS_MAX) {
		__atomic_fetch_add(&ds->news_lost, 1, __ATOMIC_RELAXED);
		return;
	}
	ds->news[n].slot = slot;
	ds->news[n].err = err;
	__atomic_store_n(&ds->nnews, n + 1, __ATOMIC_RELEASE);
}

bool store_news(const struct store *s, struct err *out)
{
	struct dirsync *ds = s->dirsync;
	if (!ds || (__atomic_load_n(&ds->nnews, __ATOMIC_ACQUIRE) == 0
		    && __atomic_load_n(&ds->news_lost, __ATOMIC_RELAXED) == 0))
		return false;
	pthread_mutex_lock(&ds->mu);
	bool any = ds->nnews > 0 || ds->news_lost;
	if (ds->nnews > 0) {
		char *path = slot_path(ds, ds->news[0].slot);
		int err = ds->news[0].err;
		if (err)
			err_set(out, "fsync %s: %s: no mail is queued there until an fsync of it "
				"succeeds again", path, strerror(err));
		else
			err_set(out, "fsync %s works again: mail is queued there again", path);
		out->sys = err;
		free(path);
		memmove(ds->news, ds->news + 1, (ds->nnews - 1) * sizeof ds->news[0]);
		__atomic_store_n(&ds->nnews, ds->nnews - 1, __ATOMIC_RELEASE);
	} else if (ds->news_lost) {
		err_set(out, "%u more changes of directory fsyncs were not logged", ds->news_lost);
		out->sys = EIO;
		__atomic_store_n(&ds->news_lost, 0, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&ds->mu);
	return any;
}

/* An fsync of the slot's directory failed (the caller holds mu). */
static void dirsync_failed(struct dirsync *ds, unsigned slot, int err)
{
	struct dirslot *sl = &ds->slot[slot];
	if (!sl->error)
		dirsync_news(ds, slot, err);
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
int dirsync_wait(struct dirsync *ds, unsigned slot, uint64_t n)
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
		dirsync_news(ds, slot, 0);
	} else {
		close(fd);	/* another commit recovered first */
	}
	pthread_mutex_unlock(&ds->mu);
	free(path);
	return 0;
}

/* Step 3 of the commit: the bucket exists and its name is durable. */
int dirsync_bucket_ready(struct dirsync *ds, unsigned b, struct err *e)
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
int spare_reserve(struct dirsync *ds, unsigned *name)
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
void spare_renamed(struct dirsync *ds, int i, unsigned b, bool ok)
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

/* Take a spare that is safe to rewrite (spares.c SPARE FILES). */
bool spare_take(struct dirsync *ds, unsigned *name)
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
			(void)dirsync_wait(ds, b, want[b]);	/* a failure is news (NEWS) */
			n++;
		}
	}
	return n;
}

/* The daemon's start: every bucket is made if missing (mkdir, and an
 * fsync of each new one) and opened, then queue/, which holds their
 * names, is fsynced once; so they are all ready before anything is
 * acknowledged, and a daemon that crashed between a mkdir and that
 * fsync left nothing acknowledged behind.  All mkdirs come before the
 * fsyncs, which then share one journal commit.  A bucket that cannot be
 * made now is left to dirsync_bucket_ready at its first commit: the
 * first such failure goes into *warn, and how many there were. */
int dirsync_adopt_buckets(struct dirsync *ds, struct err *warn, unsigned *nwarn, struct err *e)
{
	int qfd = ds->slot[SLOT_QUEUE].fd;
	bool made[QBUCKETS] = { false };
	*nwarn = 0;
	for (unsigned b = 0; b < QBUCKETS; b++) {
		char name[3];
		snprintf(name, sizeof name, "%02X", b);
		made[b] = mkdirat(qfd, name, 0700) == 0;
		if (!made[b] && errno != EEXIST && (*nwarn)++ == 0)
			err_sys(warn, "mkdir %s/%s", ds->queue_dir, name);
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
void dirsync_seed_ids(const struct dirsync *ds, struct store *s)
{
	for (int i = 0; i < NSLOTS; i++) {
		struct stat st;
		if (ds->slot[i].fd >= 0 && fstat(ds->slot[i].fd, &st) == 0)
			qid_seed(s, &st.st_mtim);
	}
}

struct dirsync *dirsync_new(const char *queue_dir, int qfd)
{
	struct dirsync *ds = xcalloc(1, sizeof *ds);
	pthread_mutex_init(&ds->mu, NULL);
	pthread_cond_init(&ds->cv, NULL);
	for (int i = 0; i < NSLOTS; i++)
		ds->slot[i].fd = -1;
	ds->slot[SLOT_QUEUE].fd = qfd;	/* the dirsync's now: it may reopen it */
	ds->queue_dir = queue_dir;
	ds->sync = plain_fsync;
	return ds;
}

void dirsync_free(struct dirsync *ds)
{
	if (!ds)
		return;
	for (int i = 0; i < NSLOTS; i++)
		if (ds->slot[i].fd >= 0)
			close(ds->slot[i].fd);
	pthread_mutex_destroy(&ds->mu);
	pthread_cond_destroy(&ds->cv);
	free(ds);
}
