/*
 * submit.c - hand a message to outboxd over its Unix socket, speaking
 * SMTP as a client: greeting, EHLO, MAIL, RCPT..., DATA, the message,
 * QUIT, each step checking its reply, in two round trips (transaction()).
 *
 * Exit-code mapping (sysexits.h): cannot connect or 4xx -> 75
 * (EX_TEMPFAIL), but the socket refuses this user (EACCES, EPERM) -> 77
 * (EX_NOPERM); 5xx to a recipient -> 67 (EX_NOUSER); other 5xx -> 65
 * (EX_DATAERR); protocol trouble -> 69 (EX_UNAVAILABLE).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>
#include <signal.h>
#include <sysexits.h>
#include <unistd.h>

#include "../common/dsnparam.h"
#include "../common/smtp.h"
#include "tool.h"

#define SUBMIT_TIMEOUT_S 300

struct conn {
	int fd;
	bool verbose;
	struct buf in;
	struct smtp_reply r;
	char *why;
	size_t why_len;
	char first_why[600];	/* the first refusal of a pipelined group */
	bool down;		/* outboxd is not running (connect_socket) */
};

static int fail(struct conn *c, int code, const char *fmt, const char *arg)
{
	snprintf(c->why, c->why_len, fmt, arg);
	return code;
}

static int send_all(struct conn *c, const char *p, size_t n)
{
	if (c->verbose)
		fprintf(stderr, ">>> %.*s", (int)(n > 2000 ? 2000 : n), p);
	if (write_all(c->fd, p, n) < 0)
		return fail(c, EX_TEMPFAIL, "lost connection to outboxd: %s", strerror(errno));
	return 0;
}

/* Read one reply into c->r; returns 0 or an exit code. */
static int read_reply(struct conn *c)
{
	struct err e;
	size_t used;
	for (;;) {
		int rc = smtp_reply_parse(c->in.data ? c->in.data : "", c->in.len, &c->r, &used, &e);
		if (rc < 0)
			return fail(c, EX_PROTOCOL, "bad reply from outboxd: %s", e.msg);
		if (rc == 1) {
			if (c->verbose)
				fprintf(stderr, "<<< %.*s", (int)used, c->in.data);
			buf_consume(&c->in, used);
			return 0;
		}
		buf_reserve(&c->in, 4096);
		ssize_t n = read(c->fd, c->in.data + c->in.len, 4096);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return fail(c, EX_TEMPFAIL, "outboxd closed the connection%s",
				    n < 0 ? " (timeout)" : "");
		c->in.len += (size_t)n;
	}
}

/* Check the class of the reply just read; map a refusal to an exit code
 * (4xx temporary, else perm_code) with the reason in c->why. */
static int check(struct conn *c, int cls, int perm_code, const char *step)
{
	char line[512], msg[600];
	if (c->r.code / 100 == cls)
		return 0;
	smtp_reply_line(&c->r, line, sizeof line);
	snprintf(msg, sizeof msg, "%s refused: %s", step, line);
	return fail(c, c->r.code / 100 == 4 ? EX_TEMPFAIL : perm_code, "%s", msg);
}

static int expect(struct conn *c, int cls, int perm_code, const char *step)
{
	int rc = read_reply(c);
	return rc ? rc : check(c, cls, perm_code, step);
}

/* Connect to outboxd; c->down says whether it is not running at all (no
 * socket file, or nobody listening on it), the one case for the pickup
 * fallback.  A socket whose mode refuses this user is no such case: the
 * refusal is [listen] socket_mode (or the unit's SocketMode=) at work. */
static int connect_socket(struct conn *c, const char *path)
{
	c->fd = tool_connect(path, SUBMIT_TIMEOUT_S);
	int err = errno;
	c->down = c->fd < 0 && (err == ENOENT || err == ECONNREFUSED);
	if (c->fd < 0 && err == ENAMETOOLONG)
		return fail(c, EX_CONFIG, "socket path too long: %s", path);
	if (c->fd < 0 && (err == EMFILE || err == ENFILE || err == ENOMEM))
		return fail(c, EX_OSERR, "socket: %s", strerror(err));
	if (c->fd < 0) {
		char m[300];
		bool refused = err == EACCES || err == EPERM;
		snprintf(m, sizeof m, "%s: %s", path, strerror(err));
		return fail(c, refused ? EX_NOPERM : EX_TEMPFAIL, refused
			    ? "outboxd's socket refuses this user ([listen] socket_mode): %s"
			    : "outboxd is not reachable at %s", m);
	}
	return 0;
}

/* The envelope commands: MAIL, every RCPT (with the DSN request: the
 * daemon offers DSN, smtp_commands.c), DATA. */
static void envelope_commands(const struct submission *s, struct buf *cmd)
{
	char notify[DSN_NOTIFY_TEXT_MAX];
	buf_printf(cmd, "MAIL FROM:<%s>%s%s", s->sender, s->eight_bit ? " BODY=8BITMIME" : "",
		   s->smtputf8 ? " SMTPUTF8" : "");
	submission_dsn_mail(s, cmd);
	buf_adds(cmd, "\r\n");
	dsn_notify_format(s->notify, notify);
	for (size_t i = 0; i < s->nrcpt; i++)
		buf_printf(cmd, "RCPT TO:<%s>%s%s\r\n", s->rcpt[i], *notify ? " NOTIFY=" : "", notify);
	buf_adds(cmd, "DATA\r\n");
}

void submission_dsn_mail(const struct submission *s, struct buf *out)
{
	if (s->ret != RET_UNSET)
		buf_printf(out, " RET=%s", dsn_ret_name(s->ret));
	if (s->envid)
		buf_printf(out, " ENVID=%s", s->envid);
}

/* The replies to the group: greeting, EHLO, MAIL, each RCPT, DATA.  All
 * are read, to stay in step; the first refusal is the one reported, and
 * then nothing is queued (a DATA that got 354 is abandoned by closing
 * the connection without the final dot). */
static int group_replies(struct conn *c, const struct submission *s)
{
	int refused = 0, rc = 0;
	size_t n = s->nrcpt + 4;
	for (size_t i = 0; i < n; i++) {
		if ((rc = read_reply(c)))
			return refused ? refused : rc;
		int r = i == 0 ? check(c, 2, EX_UNAVAILABLE, "greeting")
			: i == 1 ? check(c, 2, EX_UNAVAILABLE, "EHLO")
			: i == 2 ? check(c, 2, EX_DATAERR, "sender")
			: i < n - 1 ? check(c, 2, EX_NOUSER, "recipient")
			: check(c, 3, EX_DATAERR, "DATA");
		if (r && !refused) {	/* keep the first reason; read on to stay in step */
			refused = r;
			snprintf(c->first_why, sizeof c->first_why, "%s", c->why);
		}
		if (r && i < 2)
			break;	/* no session: the daemon said why and closes */
	}
	if (refused)
		snprintf(c->why, c->why_len, "%s", c->first_why);
	return refused;
}

/*
 * One transaction, in two round trips.  The daemon is ours and always
 * offers PIPELINING (smtp_session.c), so EHLO and the envelope go in the
 * first write, ahead of the greeting (the replies come in order; an
 * early refusal is read and reported all the same).  The message waits
 * for the 354, as RFC 2920 requires of DATA: a transaction that was
 * refused can never have its body read as commands.
 */
static int transaction(struct conn *c, const struct submission *s, char id[QID_LEN + 1])
{
	struct buf cmd;
	buf_init(&cmd);
	buf_adds(&cmd, "EHLO localhost\r\n");
	envelope_commands(s, &cmd);
	int sent = send_all(c, cmd.data, cmd.len), refused = group_replies(c, s);
	int rc = refused ? refused : sent;	/* a refusal says more than a broken pipe */
	if (!rc) {
		buf_reset(&cmd);
		smtp_dotstuff(s->msg, s->len, &cmd);
		bool v = c->verbose;
		c->verbose = false;	/* never echo the message body */
		rc = send_all(c, cmd.data, cmd.len);
		c->verbose = v;
	}
	if (!rc)
		rc = expect(c, 2, EX_DATAERR, "message");
	if (!rc) {
		const char *q = strstr(c->r.text.data, "queued as ");
		snprintf(id, QID_LEN + 1, "%s", q ? q + 10 : "");
		(void)send_all(c, "QUIT\r\n", 6);	/* the 250 was the answer that mattered */
	}
	buf_free(&cmd);
	return rc;
}

int submit_smtp(const struct config *cf, struct submission *s, char id[QID_LEN + 1],
		char *why, size_t why_len)
{
	struct conn c = { .fd = -1, .verbose = s->verbose, .why = why, .why_len = why_len };
	buf_init(&c.in);
	smtp_reply_init(&c.r);
	int rc = connect_socket(&c, cf->listen.socket);
	s->unreachable = c.down;
	if (!rc)
		rc = transaction(&c, s, id);
	if (c.fd >= 0)
		close(c.fd);
	buf_free(&c.in);
	smtp_reply_free(&c.r);
	return rc;
}

/* Copy what is readable on from to to; false at end of input or error. */
static bool pass_on(int from, int to)
{
	char b[16384];
	ssize_t n = read(from, b, sizeof b);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false;
	for (ssize_t off = 0; off < n;) {
		ssize_t w = write(to, b + off, (size_t)(n - off));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		off += w;
	}
	return true;
}

int submit_session(const struct config *cf, int in, int out, char *why, size_t why_len)
{
	struct conn c = { .fd = -1, .why = why, .why_len = why_len };
	int rc = connect_socket(&c, cf->listen.socket);
	if (rc) {
		dprintf(out, "421 4.3.0 %s\r\n", why);
		return rc;
	}
	struct pollfd p[2] = { { .fd = in, .events = POLLIN }, { .fd = c.fd, .events = POLLIN } };
	for (;;) {
		int n = poll(p, 2, SUBMIT_TIMEOUT_S * 1000);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = fail(&c, EX_TEMPFAIL, "%s", n ? strerror(errno) : "timed out");
			break;
		}
		if (p[1].revents && !pass_on(c.fd, out))
			break;	/* outboxd ended the session (QUIT, 421, or it went) */
		if (p[0].revents && !pass_on(in, c.fd)) {
			shutdown(c.fd, SHUT_WR);	/* the client's end: outboxd answers what it has */
			p[0].fd = -1;
		}
	}
	close(c.fd);
	return rc;
}
