/*
 * pickup.c - the sendmail command's fallback: when outboxd is down (its
 * socket missing, or nobody listening on it: submit.c decides), the
 * message is written into SPOOL/pickup/ as any program may (SPEC "Ways
 * in" 3), and outboxd queues it when it runs.
 *
 * Exit 0 only for a file outboxd will take:
 * - room: below [queue] min_free on the spool's file system, counting
 *   the file, nothing is written (75), as the daemon's intake refuses;
 * - readable: the file is made in pickup/tmp/ with O_EXCL, then set to
 *   0640 whatever the caller's umask, and checked (mode, and the group
 *   of pickup/new/ unless it is of that directory's owner) before
 *   anything is written; then written, fsynced, renamed into
 *   pickup/new/ and new/ fsynced;
 * - envelope: its first lines are the command's own X-Sender: and
 *   X-Receiver: (every address checked before; the DSN request as
 *   their parameters, as Exchange's pickup and Replay directories take
 *   them: RET= ENVID= after the sender, NOTIFY= after each recipient),
 *   and nothing of the message can be read as one more: the daemon
 *   (daemon/pickup.c) takes the leading lines of that form, so
 *   X-Sender:/X-Receiver: fields that begin the message are moved
 *   below its first other field.
 * The command needs write access to pickup/ (the daemon's group; the
 * installed binary is set-group-ID for it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "../common/dsnparam.h"
#include "../common/headers.h"
#include "tool.h"

static int write_fail(char *why, size_t why_len, const char *what, const char *path)
{
	snprintf(why, why_len, "outboxd is not reachable, and writing into %s failed: %s: %s",
		 path, what, strerror(errno));
	return EX_TEMPFAIL;
}

static bool envelope_field(const struct header *f)
{
	return header_is(f, "X-Sender") || header_is(f, "X-Receiver");
}

/* What the file holds (see the top); -1 when the message has no field
 * but X-Sender:/X-Receiver: ones (it has: sendmail adds From:). */
static int file_content(const struct submission *s, struct buf *b)
{
	struct header_list h;
	size_t k = 0;
	int rc = 0;
	char notify[DSN_NOTIFY_TEXT_MAX];
	buf_printf(b, "X-Sender: <%s>", s->sender);
	submission_dsn_mail(s, b);
	buf_addc(b, '\n');
	dsn_notify_format(s->notify, notify);
	for (size_t i = 0; i < s->nrcpt; i++)
		buf_printf(b, "X-Receiver: <%s>%s%s\n", s->rcpt[i], *notify ? " NOTIFY=" : "", notify);
	headers_parse(s->msg, s->len, &h);
	while (k < h.n && envelope_field(&h.v[k]))
		k++;
	if (k == 0) {
		buf_add(b, s->msg, s->len);
	} else if (k == h.n) {
		rc = -1;
	} else {	/* fields 0..k-1 start the message: the first other one goes ahead */
		const struct header *first = &h.v[k];
		size_t moved = (size_t)(first->start - s->msg), rest = moved + first->len;
		buf_add(b, first->start, first->len);
		buf_add(b, s->msg, moved);
		buf_add(b, s->msg + rest, s->len - rest);
	}
	headers_free(&h);
	return rc;
}

/* Is there room for need octets more, leaving [queue] min_free? */
static bool room(const struct config *c, uint64_t need, char *why, size_t why_len)
{
	struct statvfs sv;
	if (statvfs(c->queue.spool, &sv) < 0)
		return true;	/* cannot tell: the write will say */
	uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (avail >= c->queue.min_free + need)
		return true;
	snprintf(why, why_len, "outboxd is not reachable, and the spool has %llu KB free: the message"
		 " (%llu KB) would leave less than [queue] min_free (%llu KB)",
		 (unsigned long long)(avail / 1024), (unsigned long long)((need + 1023) / 1024),
		 (unsigned long long)(c->queue.min_free / 1024));
	return false;
}

/* Make fd readable by outboxd: 0640, of the group of dir (pickup/new/)
 * unless of dir's owner; checked.  -1 with errno. */
static int readable(int fd, const char *dir)
{
	struct stat d, st;
	if (stat(dir, &d) < 0 || fchmod(fd, 0640) < 0 || fstat(fd, &st) < 0)
		return -1;
	if (st.st_uid != d.st_uid && st.st_gid != d.st_gid
	    && (fchown(fd, (uid_t)-1, d.st_gid) < 0 || fstat(fd, &st) < 0))
		return -1;
	if ((st.st_mode & 07777) != 0640 || (st.st_uid != d.st_uid && st.st_gid != d.st_gid)) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

/* A new file in pickup/tmp/ (its name in name, its path in *tmp), or -1. */
static int create(const struct config *c, char *name, size_t name_len, char **tmp)
{
	int fd = -1;
	for (unsigned n = 0; fd < 0 && n < 100; n++) {
		free(*tmp);
		snprintf(name, name_len, "sendmail.%ld.%ld.%u", (long)time(NULL), (long)getpid(), n);
		*tmp = xasprintf("%s/pickup/tmp/%s", c->queue.spool, name);
		fd = open(*tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	return fd;
}

/* Write b into a new file of pickup/tmp/ and move it into new_dir. */
static int write_file(const struct config *c, const struct buf *b, const char *new_dir,
		      char *name, size_t name_len, char *why, size_t why_len)
{
	char *tmp = NULL;
	int rc = 0, fd = create(c, name, name_len, &tmp);
	bool made = fd >= 0;	/* only then is tmp ours to remove */
	char *dest = made ? xasprintf("%s/%s", new_dir, name) : NULL;
	if (!made)
		rc = write_fail(why, why_len, "create", tmp);
	else if (readable(fd, new_dir) < 0)
		rc = write_fail(why, why_len, "mode 0640 and the group of pickup/new/", tmp);
	else if (write_all(fd, b->data, b->len) < 0 || fsync(fd) < 0)
		rc = write_fail(why, why_len, "write", tmp);
	if (made && close(fd) < 0 && !rc)
		rc = write_fail(why, why_len, "close", tmp);
	if (!rc && rename(tmp, dest) < 0)
		rc = write_fail(why, why_len, "rename", dest);
	else if (!rc && fsync_dir(new_dir, NULL) < 0 && (rc = write_fail(why, why_len, "fsync", new_dir)))
		(void)unlink(dest);	/* not acknowledged: not left either */
	if (rc && made)
		(void)unlink(tmp);
	free(tmp);
	free(dest);
	return rc;
}

int pickup_write(const struct config *c, const struct submission *s, char *name, size_t name_len,
		 char *why, size_t why_len)
{
	char *new_dir = xasprintf("%s/pickup/new", c->queue.spool);
	struct buf b;
	int rc = 0;
	buf_init(&b);
	if (file_content(s, &b) < 0) {
		snprintf(why, why_len, "outboxd is not reachable, and the message has no header field"
			 " to put after its envelope");
		rc = EX_SOFTWARE;
	} else if (tool_group(true) < 0) {
		rc = write_fail(why, why_len, "setegid", new_dir);
	} else {
		if (!room(c, b.len, why, why_len))
			rc = EX_TEMPFAIL;
		else
			rc = write_file(c, &b, new_dir, name, name_len, why, why_len);
		(void)tool_group(false);
	}
	free(new_dir);
	buf_free(&b);
	return rc;
}
