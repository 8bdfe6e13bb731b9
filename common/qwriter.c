/*
 * qwriter.c - writing one message into the queue store (queue.h): the
 * writer, from its header to the commit that makes it durable.
 *
 * COMMIT PROTOCOL (Postfix-style; nothing is acknowledged before step 5):
 *   1. create tmp/ID with O_EXCL (or take a spare, spares.c), write header
 *      and message (a message under WRITE_CHUNK waits in memory and
 *      steps 1-5 all run in qwriter_commit, on a thread-pool thread);
 *   2. fsync(tmp/ID)                     - the bytes are on disk (a spare
 *                                         is truncated to its new length
 *                                         first);
 *   3. the bucket queue/XX exists durably: the daemon makes every
 *      bucket at start, fsyncs each new one and then queue/ (their
 *      names) before it listens (dirsync_adopt_buckets); a bucket it could not
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
 * Thread use: a writer is one caller's (the loop thread writes into
 * memory; the flush and the commit run on a thread-pool thread while
 * nobody else touches it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qstore.h"

/* Step 1: the file is opened only when the first octets must leave
 * memory, which for a message under WRITE_CHUNK is in qwriter_commit(),
 * off the loop thread: creating a file can take long (spares.c SPARE FILES). */
static int qwriter_open(struct qwriter *w)
{
	if (w->fd >= 0 || w->error)
		return w->fd >= 0 ? 0 : -1;
	if ((w->fd = spare_open(w->store, &w->tmp_path)) >= 0) {
		w->reused = true;
		return 0;
	}
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
	qrec_encode_flags(w->flags, &line);
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
	} else if ((w->fd = -1, dirsync_bucket_ready(w->dirsync, w->bucket, e) < 0)) {
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
