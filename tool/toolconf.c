/*
 * toolconf.c - where the command-line programs (outbox, outbox-probe)
 * find their configuration: -C FILE, else $OUTBOX_CONF, else the default
 * path, which may be missing (then defaults apply); and what the outbox
 * command does with its set-group-ID bit (the installed binary has the
 * daemon's group, for the pickup directory and for reading its default
 * configuration only); how a helper run as root becomes the daemon's
 * user (tool_become_daemon_user); and the one way the tool connects to
 * outboxd's Unix sockets (tool_connect).
 */
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include "../common/become.h"
#include "tool.h"

/* Run set-group-ID by someone who is not root? */
static bool privileged(void)
{
	gid_t r, e, saved;
	return getresgid(&r, &e, &saved) == 0 && saved != r && getuid() != 0;
}

void tool_drop_group(void)
{
	if (!privileged())
		return;
	if (setegid(getgid()) < 0)
		exit(EX_OSERR);
	if (getenv("OUTBOX_CONF")) {
		fprintf(stderr, "outbox: OUTBOX_CONF is refused while set-group-ID (only root may name"
				" another configuration)\n");
		exit(EX_CONFIG);
	}
	clearenv();	/* nothing of the caller's environment steers a privileged run */
	setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin", 1);
}

int tool_group(bool on)
{
	gid_t r, e, saved;
	if (getresgid(&r, &e, &saved) < 0 || saved == r)
		return 0;	/* not set-group-ID: nothing to take up */
	return setegid(on ? saved : r);
}

#ifdef __SANITIZE_ADDRESS__
/* make check SAN=1: LeakSanitizer cannot stop the world in a
 * set-group-ID process (the kernel makes it not dumpable), and then
 * fails its exit; it is turned off there only (ASan's other checks
 * stay, and every other run of the tool is leak-checked). */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
	gid_t r, e, saved;
	return getresgid(&r, &e, &saved) == 0 && saved != r;
}
#endif

int tool_connect(const char *path, int timeout_s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = timeout_s };
	if (strlen(path) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, path);
	signal(SIGPIPE, SIG_IGN);	/* a daemon that went away is an error, not a death */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

char **tool_helper_argv(char *path, const char *conf, int argc, char **argv, int from)
{
	char **args = xcalloc((size_t)(argc > 0 ? argc : 0) + 4, sizeof *args);
	int k = 0;
	args[k++] = path;
	if (conf) {
		args[k++] = "-C";
		args[k++] = (char *)conf;
	}
	for (int i = from; i < argc; i++)
		args[k++] = argv[i];
	return args;
}

int tool_helper_args(int argc, char **argv, const char **conf)
{
	*conf = NULL;
	if (argc >= 3 && strcmp(argv[1], "-C") == 0) {
		*conf = argv[2];
		return 3;
	}
	return 1;
}

/*
 * Set-group-ID by someone else, the tool reads its default configuration
 * (and outbox.conf.d/) with the group it was given, so that the
 * configuration need not be readable by all (root:outbox 0640): the path
 * is then the built-in one only (-C and OUTBOX_CONF are refused above),
 * and the trust rule takes root's files only while the group is held
 * (common/conftrust.h).  Another configuration is read, by everyone
 * else, with the caller's own ids.
 */
struct config *tool_config(const char *path)
{
	unsigned flags = CONF_CLIENT;
	bool group = privileged();
	if (group && path) {
		fprintf(stderr, "outbox: -C is refused while set-group-ID (only root may name another"
				" configuration)\n");
		exit(EX_CONFIG);
	}
	if (!path && !group)
		path = getenv("OUTBOX_CONF");
	if (!path || !*path) {
		path = OUTBOX_DEFAULT_CONF;
		flags |= CONF_MISSING_OK;
	}
	struct buf errors;
	buf_init(&errors);
	if (group && tool_group(true) < 0)
		exit(EX_OSERR);
	struct config *c = config_load(path, flags, &errors);
	if (group && tool_group(false) < 0)
		exit(EX_OSERR);
	if (!c) {
		fprintf(stderr, "outbox: configuration error:\n%s\n", errors.data);
		buf_free(&errors);
		exit(EX_CONFIG);
	}
	buf_free(&errors);
	return c;
}

void tool_become_daemon_user(const struct config *c, const char *prog)
{
	struct err e;
	uid_t uid;
	gid_t gid;
	if (geteuid() != 0)
		return;
	if (user_lookup(c->queue.user, &uid, &gid, &e) < 0) {
		fprintf(stderr, "%s: %s\n", prog, e.msg);
		exit(EX_CONFIG);
	}
	if (user_become(c->queue.user, uid, gid, &e) < 0) {
		fprintf(stderr, "%s: %s\n", prog, e.msg);
		exit(EX_OSERR);
	}
}
