/*
 * conftrust.c - opening the configuration's files under the one trust
 * rule (conftrust.h): O_NOFOLLOW, then fstat of what was opened.
 *
 * Invariant: a descriptor is returned only for a file (or directory)
 * that passed every check through that same descriptor; nothing is
 * judged by its path, so a file swapped in after the check is never the
 * one read.
 */
#include "conftrust.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

/* Whose files this run trusts besides root's: its own, unless it reads
 * with a group it was given (set-group-ID, taken up: tool_group). */
static bool owner_trusted(uid_t owner)
{
	if (owner == 0)
		return true;
	return owner == geteuid() && getegid() == getgid();
}

/* The checks on an opened descriptor; closes it on failure. */
static int judge(int fd, const char *path, bool dir, struct err *e)
{
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) < 0)
		rc = err_sys(e, "stat");
	else if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
		rc = err_set(e, "not a %s: refusing it", dir ? "directory" : "regular file");
	else if (!owner_trusted(st.st_uid))
		rc = err_set(e, "owned by uid %ld, not by root%s: refusing a configuration that may "
			     "run password_command (chown root %s)", (long)st.st_uid,
			     geteuid() != 0 && getegid() == getgid() ? " or this user" : "", path);
	else if (st.st_mode & (S_IWGRP | S_IWOTH))
		rc = err_set(e, "writable by its group or others: refusing a configuration that may "
			     "run password_command (chmod go-w %s)", path);
	if (rc < 0) {
		close(fd);
		errno = EPERM;
	}
	return rc < 0 ? -1 : fd;
}

/* The error of a failed open: a link is named as such. */
static int open_failed(struct err *e)
{
	if (errno == ELOOP)
		return err_set(e, "a symbolic link: refusing it (a configuration file is never "
			       "followed through a link; put the file itself there)");
	return err_sys(e, "cannot open");
}

int conf_open_at(int dirfd, const char *name, const char *path, struct err *e)
{
	/* O_NONBLOCK: a FIFO put there does not hang the open; it is refused */
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? err_sys(e, "cannot open") : open_failed(e);
	fd = judge(fd, path, false, e);
	if (fd >= 0)
		(void)fcntl(fd, F_SETFL, 0);	/* a regular file: reads as usual */
	return fd;
}

int conf_open_file(const char *path, struct err *e)
{
	return conf_open_at(AT_FDCWD, path, path, e);
}

int conf_open_dir(const char *path, struct err *e)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? err_sys(e, "cannot open") : open_failed(e);
	return judge(fd, path, true, e);
}
