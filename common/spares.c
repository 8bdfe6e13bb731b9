/*
 * spares.c - finished queue files kept for reuse, and the removal of a
 * finished message (queue.h store_remove).  The bookkeeping of which
 * spare may be rewritten is dirsync.c's (it waits on the same fsyncs).
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
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qstore.h"

int spare_open(const struct store *s, char **path)
{
	unsigned name;
	if (!spare_take(s->dirsync, &name))
		return -1;
	char *p = xasprintf("%s/" SPARE_PREFIX "%u", s->tmp_dir, name);
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		(void)unlink(p);
		free(p);
		return -1;
	}
	*path = p;
	return fd;
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
	qdefer_forget(s, name);
	char *path = store_msg_path(s, name);
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
