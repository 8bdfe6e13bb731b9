/*
 * privs.c - what outboxd does as root before it becomes [queue] user for
 * good: make the spool (spool_layout, common/queue.c) and the socket
 * directories, and give them to that user; then become it
 * (common/become.h).
 *
 * Invariants:
 *  - no path is followed through a symbolic link: every spool directory
 *    is opened with O_NOFOLLOW relative to its parent's descriptor and
 *    changed only through its own descriptor (fchown, fchmod), so a link
 *    planted by the daemon's user, who owns the spool, cannot make root
 *    change another file;
 *  - a directory that is a link, or is owned by neither root nor the
 *    daemon's user, is refused (exit 78 naming it);
 *  - nothing is given away that outboxd did not make: a spool directory
 *    is chowned to the daemon's user only when made here, or when it is
 *    that user's already (its group put right); an existing root-owned
 *    one (spool = /etc) is refused with exit 78, never chowned;
 *  - a socket directory is given to the daemon's user only when outboxd
 *    made it: an existing one (/run itself, with socket = /run/x.sock)
 *    is left as it is;
 *  - a directory made here is fsynced, and so is its parent.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "../common/become.h"
#include "../common/log.h"
#include "../common/queue.h"
#include "privs.h"

/* Open (making it first if missing) directory name under parent with
 * O_NOFOLLOW; *made says whether it was made here. */
static int open_dir(int parent, const char *name, const char *path, mode_t mode, bool *made,
		    struct err *e)
{
	/* no mkdir of what exists (RestrictSUIDSGID= refuses one with the
	 * set-group-ID bit even then, see ensure_dir) */
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	*made = false;
	if (fd < 0 && errno == ENOENT) {
		*made = mkdirat(parent, name, mode & 0777) == 0;
		if (!*made && errno != EEXIST)
			return err_sys(e, "mkdir %s", path);
		fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0 && (errno == ELOOP || errno == ENOTDIR))
		return err_set(e, "%s is a symbolic link or not a directory: refusing to use it", path);
	if (fd < 0)
		return err_sys(e, "open %s", path);
	return fd;
}

/* Whom the directories are for. */
struct ids {
	uid_t uid;
	gid_t gid;
	const char *name;
};

/* The directory at fd becomes the daemon's (give) or is only checked;
 * one that exists is given only when it is the daemon's user's already
 * (its group put right): root's stays root's. */
static int own_dir(int fd, int parent, const char *path, mode_t mode, bool made, bool give,
		   const struct ids *u, struct err *e)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_sys(e, "stat %s", path);
	if (st.st_uid != 0 && st.st_uid != u->uid)
		return err_set(e, "%s is owned by uid %ld, neither root nor the daemon's user: "
			       "refusing to use it", path, (long)st.st_uid);
	if (give && !made && st.st_uid != u->uid)
		return err_set(e, "%s is owned by root and outboxd did not make it: refusing to give it "
			       "to user %s (a root start gives away only the directories it makes; if "
			       "it is meant for the spool, chown it to %s yourself)", path, u->name, u->name);
	if (give && (st.st_uid != u->uid || st.st_gid != u->gid) && fchown(fd, u->uid, u->gid) < 0)
		return err_sys(e, "chown %s", path);
	/* exact: no umask, set-group-ID kept where the system allows it */
	if (made && fchmod(fd, mode) < 0
	    && (errno != EPERM || !(mode & S_ISGID) || fchmod(fd, mode & 0777) < 0))
		return err_sys(e, "chmod %s", path);
	if (made && (fsync(fd) < 0 || fsync(parent) < 0))
		return err_sys(e, "fsync %s or its parent", path);
	return 0;
}

/* One directory: opened, checked, given (the spool's; a socket's only
 * when made here).  Returns its descriptor. */
static int prepare(int parent, const char *name, const char *path, mode_t mode, bool spool,
		   const struct ids *u, struct err *e)
{
	bool made;
	int fd = open_dir(parent, name, path, mode, &made, e);
	if (fd >= 0 && own_dir(fd, parent, path, mode, made, spool || made, u, e) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* The directory holding path (its parent is taken as trusted). */
static int prepare_path(const char *path, mode_t mode, bool spool, const struct ids *u, struct err *e)
{
	char *copy = xstrdup(path);
	char *slash = strrchr(copy, '/');
	while (slash && slash > copy && slash[1] == '\0') {	/* "dir/" */
		*slash = '\0';
		slash = strrchr(copy, '/');
	}
	const char *name = slash ? slash + 1 : copy;
	int parent = slash ? -1 : AT_FDCWD;
	if (slash) {
		*slash = '\0';
		parent = open(slash == copy ? "/" : copy, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	int fd = parent == -1 ? err_sys(e, "open the directory of %s", path)
			      : prepare(parent, name, path, mode, spool, u, e);
	if (parent >= 0)
		close(parent);
	free(copy);
	return fd;
}

static int prepare_spool(const char *spool, const struct ids *u, struct err *e)
{
	int top = prepare_path(spool, SPOOL_MODE, true, u, e), rc = top < 0 ? -1 : 0;
	int pickup = -1;
	for (const struct spool_dir *sd = spool_layout; rc == 0 && sd->name; sd++) {
		const char *slash = strchr(sd->name, '/');	/* one level: pickup/x */
		int parent = slash ? pickup : top;
		char *path = xasprintf("%s/%s", spool, sd->name);
		int fd = parent < 0 ? err_set(e, "%s: no parent", path)
				    : prepare(parent, slash ? slash + 1 : sd->name, path, sd->mode, true, u, e);
		free(path);
		if (fd < 0)
			rc = -1;
		else if (!slash && strcmp(sd->name, "pickup") == 0)
			pickup = fd;
		else
			close(fd);
	}
	if (pickup >= 0)
		close(pickup);
	if (top >= 0)
		close(top);
	return rc;
}

/* The directory of a socket path. */
static int prepare_socket_dir(const char *sock, const struct ids *u, struct err *e)
{
	char *dir = xstrdup(sock);
	char *slash = strrchr(dir, '/');
	int rc = 0;
	if (slash && slash != dir) {
		*slash = '\0';
		int fd = prepare_path(dir, 0755, false, u, e);
		rc = fd < 0 ? -1 : 0;
		if (fd >= 0)
			close(fd);
	}
	free(dir);
	return rc;
}

void drop_privileges(const struct config *c)
{
	struct err e;
	uid_t uid;
	gid_t gid;
	if (geteuid() != 0)
		return;
	if (user_lookup(c->queue.user, &uid, &gid, &e) < 0)
		fatal(EX_CONFIG, "%s", e.msg);
	struct ids ids = { uid, gid, c->queue.user };
	if (prepare_spool(c->queue.spool, &ids, &e) < 0
	    || prepare_socket_dir(c->listen.socket, &ids, &e) < 0
	    || prepare_socket_dir(c->listen.control, &ids, &e) < 0)
		fatal(EX_CONFIG, "%s", e.msg);
	if (user_become(c->queue.user, uid, gid, &e) < 0)
		fatal(EX_OSERR, "%s", e.msg);
	log_info("running as user %s (uid %ld)", c->queue.user, (long)uid);
}
