/*
 * qload.c - reading a queued message (queue.h store_load), and the
 * in-place updates of a loaded one: recipients' status marks, the next
 * try in its name.
 *
 * STATUS UPDATES: a recipient's final result is one byte written with
 * pwrite() at its recorded offset, then fdatasync(); a one-byte write
 * cannot tear.  When no recipient is pending the file leaves its bucket.  A
 * crash after the upstream's 250 but before the status byte is synced
 * means that recipient is sent again: the only duplicate allowed.
 *
 * INVARIANT: a header is read linearly and never beyond QHEADER_MAX, so
 * a corrupt file of any size costs little; what is returned passed
 * qrec_decode's checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qstore.h"

#define QHEADER_MAX (32 * 1024 * 1024)	/* 100000 recipients ([queue] max_recipients) fit */

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
char *store_msg_path(const struct store *s, const char *name)
{
	return xasprintf("%s/%02X/%s", s->queue_dir, qid_bucket(name), name);
}

/* The file of id under another name in its bucket (its name changed
 * since the caller learnt it); false when there is none. */
bool store_find_in_bucket(const struct store *s, const char *id, char name[QNAME_MAX])
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
	char *path = store_msg_path(s, name), id[QID_LEN + 1];
	struct buf b;
	struct stat st;
	int rc = -1, flags = (fdp ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC;
	buf_init(&b);
	int fd = open(path, flags);
	memcpy(id, name, QID_LEN);
	id[QID_LEN] = '\0';
	if (fd < 0 && errno == ENOENT && store_find_in_bucket(s, id, name)) {
		free(path);
		path = store_msg_path(s, name);
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

bool store_has(const struct store *s, const char *id)
{
	char name[QNAME_MAX], *path;
	struct stat st;
	snprintf(name, sizeof name, "%s", id);
	path = store_msg_path(s, name);
	bool found = lstat(path, &st) == 0 || store_find_in_bucket(s, id, name);
	free(path);
	return found;
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
	if (r->status_off < 0 || !qrec_status_valid(status))
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
	char *from = store_msg_path(s, name), *to = store_msg_path(s, fresh);
	int rc = 0;
	if (strcmp(from, to) != 0 && rename(from, to) < 0)
		rc = err_sys(e, "rename %s to %s", from, to);
	else
		memcpy(name, fresh, sizeof fresh);
	free(from);
	free(to);
	return rc;
}
