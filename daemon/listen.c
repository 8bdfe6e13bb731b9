/*
 * listen.c - the listeners: the Unix socket of [listen] socket (mode
 * socket_mode) and the optional TCP listener of [listen] tcp, whose
 * connections become SMTP server sessions; and the control socket of
 * [listen] control (mode 0666), whose connections go to control.c.
 *
 * Socket activation (systemd/outboxd.socket, sd_listen_fds(3)): when
 * LISTEN_PID is ours, a passed socket (fds from 3, LISTEN_FDS of them)
 * named "submission" or "control" in LISTEN_FDNAMES, or else bound to
 * the configured path, is used instead of binding one; its file is
 * systemd's, so a stop leaves it, and mail submitted while outboxd
 * restarts waits in it.  The variables are removed from the
 * environment, so helpers do not see them.  Its file's mode is the
 * unit's SocketMode=, not [listen] socket_mode: when the two differ it
 * is said at start and at each reload (listeners_reloaded).
 *
 * Invariant: a stale socket file left by a dead daemon is replaced, but
 * a socket that still answers (another outboxd) is never stolen.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/log.h"
#include "outboxd.h"
#include "control.h"
#include "listen.h"
#include "sessions.h"
#include "stream_handle.h"

struct listener {
	union stream_handle h;
	struct daemon *d;
	bool is_unix;
	bool control;		/* the control socket (control.c), not submission */
	char *path;
	char *passed;		/* the submission socket systemd passed: its file (which
				   stays systemd's), and that file's mode at start */
	unsigned passed_mode;
	struct listener *next;
};

static void on_connection(uv_stream_t *server, int status)
{
	struct listener *l = server->data;
	if (status < 0) {
		log_warn("accept: %s", uv_strerror(status));
		return;
	}
	if (l->control)
		control_accept(l->d, server);
	else
		session_accept(l->d, server, l->is_unix);
}

/* Remove path if it is a socket nobody answers on. */
static int clear_stale_socket(const char *path, struct err *e)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : err_sys(e, "stat %s", path);
	if (!S_ISSOCK(st.st_mode))
		return err_set(e, "%s exists and is not a socket", path);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
		close(fd);
		return err_set(e, "%s is in use by a running daemon", path);
	}
	if (fd >= 0)
		close(fd);
	if (unlink(path) < 0)
		return err_sys(e, "unlink stale socket %s", path);
	return 0;
}

#define SD_LISTEN_FDS_START 3

/* The passed socket for path (name: its FileDescriptorName), or -1;
 * its own path is copied into at (for the log). */
static int activated_fd(const char *path, const char *name, char at[108])
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	if (!pid || !fds || atol(pid) != (long)getpid())
		return -1;
	int n = atoi(fds);
	const char *names = getenv("LISTEN_FDNAMES");
	for (int i = 0; i < n && i < 64; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		bool named = false;
		if (names) {	/* "a:b:c", one a fd */
			const char *p = names;
			for (int k = 0; k < i && p; k++)
				p = strchr(p, ':') ? strchr(p, ':') + 1 : NULL;
			named = p && strncmp(p, name, strlen(name)) == 0
				&& (p[strlen(name)] == ':' || p[strlen(name)] == '\0');
		}
		struct sockaddr_un sa;
		socklen_t len = sizeof sa;
		int type = 0, listening = 0;
		socklen_t tl = sizeof type, ll = sizeof listening;
		if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0 || sa.sun_family != AF_UNIX
		    || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM
		    || getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ll) < 0 || !listening)
			continue;
		size_t plen = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
		bool same_path = plen && strncmp(sa.sun_path, path, plen) == 0 && strlen(path) <= plen;
		if (named || same_path) {
			(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
			snprintf(at, 108, "%.*s", (int)strnlen(sa.sun_path, plen), sa.sun_path);
			return fd;
		}
	}
	return -1;
}

/* A passed submission socket's file mode, which systemd's SocketMode=
 * set: said when it is not [listen] socket_mode, which does not apply. */
static void check_passed_mode(const struct listener *l, unsigned mode)
{
	char safe[4 * 108 + 1];
	if (!l->passed || l->passed_mode == mode)
		return;
	log_safe(l->passed, safe, sizeof safe);
	log_warn("the submission socket %s passed by systemd has mode %04o, not [listen] socket_mode"
		 " = %04o: the unit's SocketMode= decides who may submit", safe, l->passed_mode, mode);
}

void listeners_reloaded(struct daemon *d)
{
	for (const struct listener *l = d->listeners; l; l = l->next)
		check_passed_mode(l, (unsigned)d->conf->listen.socket_mode);
}

/* After the listeners: the helpers outboxd runs must not take them. */
static void forget_activation(void)
{
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

static struct listener *listener_new(struct daemon *d, bool is_unix)
{
	struct listener *l = xcalloc(1, sizeof *l);
	l->d = d;
	l->is_unix = is_unix;
	l->h.handle.data = l;
	l->next = d->listeners;
	d->listeners = l;
	return l;
}

static int listen_unix(struct daemon *d, const char *path, unsigned mode, bool control,
		       struct err *e)
{
	int rc;
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return err_set(e, "socket path too long: %s", path);
	char at[108] = "";
	int passed = activated_fd(path, control ? "control" : "submission", at);
	if (passed >= 0) {	/* systemd's: it keeps the file */
		struct listener *l = listener_new(d, true);
		l->control = control;
		uv_pipe_init(d->loop, &l->h.pipe, 0);
		l->h.handle.data = l;
		if ((rc = uv_pipe_open(&l->h.pipe, passed)) < 0
		    || (rc = uv_listen(&l->h.stream, 128, on_connection)) < 0)
			return err_set(e, "the socket systemd passed for %s: %s", path, uv_strerror(rc));
		if (strcmp(at, path) == 0)
			log_info("listening on %s (passed by systemd)", path);
		else	/* named by the unit: the unit's path is the one that counts */
			log_info("listening on %s (passed by systemd as '%s'; [listen] %s = %s is not used)",
				 at, control ? "control" : "submission", control ? "control" : "socket", path);
		struct stat st;
		if (!control && at[0] == '/' && stat(at, &st) == 0) {	/* not an abstract one */
			l->passed = xstrdup(at);
			l->passed_mode = (unsigned)st.st_mode & 0777;
			check_passed_mode(l, mode);
		}
		return 0;
	}
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = '\0';
	int rc_dir = slash && slash != dir ? ensure_dir(dir, 0755, e) : 0;
	free(dir);
	if (rc_dir < 0 || clear_stale_socket(path, e) < 0)
		return -1;
	struct listener *l = listener_new(d, true);
	l->control = control;
	uv_pipe_init(d->loop, &l->h.pipe, 0);
	l->h.handle.data = l;
	if ((rc = uv_pipe_bind(&l->h.pipe, path)) < 0)
		return err_set(e, "bind %s: %s", path, uv_strerror(rc));
	l->path = xstrdup(path);
	if (chmod(path, mode) < 0)
		return err_sys(e, "chmod %s", path);
	if ((rc = uv_listen(&l->h.stream, 128, on_connection)) < 0)
		return err_set(e, "listen %s: %s", path, uv_strerror(rc));
	log_info("listening on %s", path);
	return 0;
}

static int listen_tcp(struct daemon *d, const char *spec, struct err *e)
{
	char host[256];
	const char *colon;
	struct sockaddr_storage ss;
	int rc, port;
	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');
		snprintf(host, sizeof host, "%.*s", (int)(end - spec - 1), spec + 1);
		colon = end + 1;
	} else {
		colon = strrchr(spec, ':');
		snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
	}
	port = atoi(colon + 1);
	if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0
	    && uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0)
		return err_set(e, "[listen] tcp: '%s' is not a numeric IP address", host);
	struct listener *l = listener_new(d, false);
	uv_tcp_init(d->loop, &l->h.tcp);
	l->h.handle.data = l;
	if ((rc = uv_tcp_bind(&l->h.tcp, (struct sockaddr *)&ss, 0)) < 0
	    || (rc = uv_listen(&l->h.stream, 128, on_connection)) < 0)
		return err_set(e, "listen on %s: %s", spec, uv_strerror(rc));
	log_info("listening on %s", spec);
	if (!tcp_is_loopback(spec))
		log_warn("[listen] tcp %s is not loopback (tcp_allow_remote = yes): whoever reaches it "
			 "can relay mail through the upstream; firewall it", spec);
	return 0;
}

int listeners_start(struct daemon *d, struct err *e)
{
	const struct config *c = d->conf;
	if (listen_unix(d, c->listen.socket, (unsigned)c->listen.socket_mode, false, e) < 0)
		return -1;
	/* anyone may ask: outboxd answers each user about its own mail only */
	if (*c->listen.control && listen_unix(d, c->listen.control, 0666, true, e) < 0)
		return -1;
	if (*c->listen.tcp && listen_tcp(d, c->listen.tcp, e) < 0)
		return -1;
	forget_activation();
	return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
	struct listener *l = h->data;
	free(l->path);
	free(l->passed);
	free(l);
}

void listeners_stop(struct daemon *d)
{
	struct listener *l = d->listeners, *next;
	d->listeners = NULL;
	for (; l; l = next) {
		next = l->next;
		if (l->path)
			(void)unlink(l->path);
		uv_close(&l->h.handle, on_listener_closed);
	}
}
