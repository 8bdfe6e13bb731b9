/*
 * pickup.c - the sendmail command's fallback: when outboxd cannot be
 * reached, the message is written into SPOOL/pickup/ as any program
 * may (SPEC "Ways in" 3), and outboxd queues it when it runs.
 *
 * The file is made in pickup/tmp/ with O_EXCL, written, fsynced, then
 * renamed into pickup/new/ and new/ fsynced: only then exit 0.  Its
 * first lines are X-Sender: and X-Receiver: (the envelope, every
 * address checked before), then the message as it would have been
 * submitted.  The command needs write access to pickup/ (the
 * daemon's group; the installed binary is set-group-ID for it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

static int write_fail(char *why, size_t why_len, const char *what, const char *path)
{
	snprintf(why, why_len, "outboxd is not reachable, and writing into %s failed: %s: %s",
		 path, what, strerror(errno));
	return EX_TEMPFAIL;
}

int pickup_write(const struct config *c, const struct submission *s, char *name, size_t name_len,
		 char *why, size_t why_len)
{
	char *tmp = NULL, *new_dir = xasprintf("%s/pickup/new", c->queue.spool);
	struct buf b;
	int fd = -1, rc = 0;
	buf_init(&b);
	buf_printf(&b, "X-Sender: <%s>\n", s->sender);
	for (size_t i = 0; i < s->nrcpt; i++)
		buf_printf(&b, "X-Receiver: <%s>\n", s->rcpt[i]);
	buf_add(&b, s->msg, s->len);
	if (tool_group(true) < 0) {
		rc = write_fail(why, why_len, "setegid", new_dir);
		free(new_dir);
		buf_free(&b);
		return rc;
	}
	for (unsigned n = 0; fd < 0 && n < 100; n++) {
		free(tmp);
		snprintf(name, name_len, "sendmail.%ld.%ld.%u", (long)time(NULL), (long)getpid(), n);
		tmp = xasprintf("%s/pickup/tmp/%s", c->queue.spool, name);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	char *dest = xasprintf("%s/%s", new_dir, name);
	if (fd < 0)
		rc = write_fail(why, why_len, "create", tmp);
	else if (write_all(fd, b.data, b.len) < 0 || fsync(fd) < 0)
		rc = write_fail(why, why_len, "write", tmp);
	else if (close(fd) < 0 || (fd = -1, rename(tmp, dest) < 0))
		rc = write_fail(why, why_len, "rename", dest);
	else if (fsync_dir(new_dir, NULL) < 0)
		rc = write_fail(why, why_len, "fsync", new_dir);
	if (fd >= 0)
		close(fd);
	if (rc && tmp)
		(void)unlink(tmp);
	(void)tool_group(false);
	free(tmp);
	free(dest);
	free(new_dir);
	buf_free(&b);
	return rc;
}
