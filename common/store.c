/*
 * store.c - the queue store (queue.h): the spool's layout, its lock,
 * opening and closing a store; room on the disk.
 *
 * LAYOUT under SPOOL (owned by the daemon's user):
 *   lock      flock()ed by the running outboxd: one daemon per spool;
 *             it holds that daemon's pid
 *   tmp/      messages being written, and spare files (spares.c); anything
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
 * The store's other concerns live in files of their own (qstore.h has
 * the list).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "qstore.h"

const struct spool_dir spool_layout[] = {
	{ "tmp", 0700 }, { "queue", 0700 }, { "corrupt", 0700 }, { "defer", 0700 }, { "rate", 0700 },
	{ "pickup", 02770 },
	{ "pickup/tmp", 02770 }, { "pickup/new", 02770 }, { "pickup/bad", 02750 },
	{ "pickup/taking", 0700 },
	{ NULL, 0 },
};

/* Something store_open could go on without, for the caller to say
 * (past STORE_NOTES_MAX, the last is overwritten). */
static struct err *note(struct store *s)
{
	if (s->nnotes < STORE_NOTES_MAX)
		s->nnotes++;
	return &s->notes[s->nnotes - 1];
}

/* The lock file says which process holds it (for `sendmail -q`); a
 * failure to write it costs nothing else. */
static void write_pid(struct store *s, int fd)
{
	char pid[24];
	int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		err_sys(note(s), "cannot write the pid into the spool's lock file");
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

/* The buckets made at the daemon's start (dirsync.c); one that cannot
 * be is made at its first message. */
static int adopt_buckets(struct store *s, struct err *e)
{
	struct err warn;
	unsigned nwarn;
	int rc = dirsync_adopt_buckets(s->dirsync, &warn, &nwarn, e);
	if (nwarn == 1)
		err_set(note(s), "%s (tried again at its first message)", warn.msg);
	else if (nwarn > 1)
		err_set(note(s), "%s, and %u more buckets (each tried again at its first message)",
			warn.msg, nwarn - 1);
	return rc;
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
			err_set(note(s), "%s is not set-group-ID: files dropped there keep their makers' "
				"groups (systemd-tmpfiles --create outbox.conf makes it as it should be)", p);
		free(p);
	}
	if (rc == 0 && (qfd = open(s->queue_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		rc = err_sys(e, "open %s", s->queue_dir);
	if (rc == 0)
		s->dirsync = dirsync_new(s->queue_dir, qfd);	/* qfd is the dirsync's now */
	if (rc == 0 && lock) {
		char *lp = xasprintf("%s/lock", spool);
		s->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (s->lock_fd < 0)
			rc = err_sys(e, "open %s", lp);
		else if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0)
			rc = err_sys(e, "spool %s is in use by another outboxd (lock %s)", spool, lp);
		else
			write_pid(s, s->lock_fd);
		free(lp);
	}
	if (rc == 0 && lock)
		rc = adopt_buckets(s, e);
	if (rc == 0 && lock)
		dirsync_seed_ids(s->dirsync, s);
	if (rc < 0)
		store_close(s);
	return rc;
}

void store_close(struct store *s)
{
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	dirsync_free(s->dirsync);
	free(s->spool);
	free(s->tmp_dir);
	free(s->queue_dir);
	free(s->corrupt_dir);
	memset(s, 0, sizeof *s);
	s->lock_fd = -1;
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
