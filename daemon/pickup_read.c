/*
 * pickup_read.c - one pickup file read into a message (pickup_int.h),
 * on the thread pool: taken to taking/ID (pickup_take.c), opened without
 * following links, checked (a regular file, one link, within
 * max_message_size, no NUL), its owner's login looked up, its envelope
 * taken from the leading X-Sender:/X-Receiver: lines (with the DSN
 * parameters of Exchange's pickup form) or else from its headers as
 * sendmail -t does, and the message composed with the fields outbox adds.
 *
 * Invariant: a file that cannot be a message gets verdict P_BAD with
 * the reason; nothing here touches the loop's state.  Recipients stop
 * being expanded once over [queue] max_recipients (the file is bad
 * then), so a file of many X-Receiver: lines costs in its size only.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/address.h"
#include "../common/dsnparam.h"
#include "../common/headers.h"
#include "../common/rewrite.h"
#include "../common/smtp.h"
#include "pickup_int.h"

static bool bad(struct pjob *j, const char *why)
{
	snprintf(j->why, sizeof j->why, "%s", why);
	j->verdict = P_BAD;
	return false;
}

/* Steps 1 and 2 of TAKING (pickup_take.c); the file is then read from
 * taking/ID. */
static bool take_it(struct pjob *j)
{
	char why[200];
	switch (take_file(&j->p->d->store, &j->p->dirs, j->name, j->conf->queue.min_free, j->id,
			  &j->avail, why, sizeof why)) {
	case TAKEN:
		j->taken = true;
		return true;
	case TAKE_GONE:
		j->verdict = P_GONE;
		return false;
	case TAKE_NO_ROOM:
		j->verdict = P_NO_ROOM;
		return false;
	default:
		return bad(j, why);
	}
}

/* taking/ID, which nobody but outboxd can change or swap. */
static bool open_file(struct pjob *j, int *fd, struct stat *st)
{
	char *path = xasprintf("%s/%s", j->p->dirs.taking_dir, j->id);
	*fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	free(path);
	if (*fd < 0)
		return bad(j, errno == ELOOP ? "a symbolic link" : strerror(errno));
	if (fstat(*fd, st) < 0)
		return bad(j, strerror(errno));
	if (!S_ISREG(st->st_mode))
		return bad(j, "not a regular file");
	if (st->st_nlink != 1)	/* a hard link could show another's file */
		return bad(j, "a hard link");
	if ((uint64_t)st->st_size > j->conf->queue.max_message_size)
		return bad(j, "larger than [queue] max_message_size");
	return true;
}

static bool read_all(struct pjob *j, int fd, size_t size, struct buf *raw)
{
	buf_reserve(raw, size + 1);
	while (raw->len < size) {
		ssize_t n = read(fd, raw->data + raw->len, size - raw->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return bad(j, n < 0 ? strerror(errno) : "shorter than its size");
		raw->len += (size_t)n;
	}
	if (memchr(raw->data, '\0', raw->len))
		return bad(j, "binary: it holds NUL octets");
	return true;
}

static void add_rcpt(const char *a, void *arg)
{
	struct envelope *env = arg;
	for (size_t i = 0; i < env->nrcpt; i++)
		if (strcasecmp(env->rcpt[i].addr, a) == 0)
			return;	/* the same recipient twice gets one copy */
	envelope_add_rcpt(env, a);
}

/* A recipient as written: through [aliases], qualified (as on the
 * socket, smtp_session.c). */
static void add_written(const char *a, void *arg)
{
	struct pjob *j = arg;
	struct err e;
	if (j->env.nrcpt <= j->conf->queue.max_recipients	/* else bad: no more work (read_work) */
	    && rcpt_expand(j->conf, a, add_rcpt, &j->env, &e) < 0)
		bad(j, e.msg);
}

/* Leading "X-Sender: <a> RET=HDRS ENVID=x" and "X-Receiver: <b> NOTIFY=..
 * ORCPT=.." lines (Exchange's pickup convention, dsnparam.h) give the
 * envelope; returns the offset of the message after them. */
static size_t envelope_lines(struct pjob *j, const char *p, size_t len, char **sender, bool *bad_line)
{
	size_t off = 0;
	*bad_line = false;
	for (;;) {
		const char *nl = memchr(p + off, '\n', len - off);
		size_t l = nl ? (size_t)(nl - p - off) : len - off;
		const char *line = p + off, *why;
		bool is_sender = l > 9 && strncasecmp(line, "X-Sender:", 9) == 0;
		bool is_rcpt = l > 11 && strncasecmp(line, "X-Receiver:", 11) == 0;
		if (!nl || (!is_sender && !is_rcpt))
			return off;
		char *v = xstrndup(line + (is_sender ? 9 : 11), l - (is_sender ? 9 : 11));
		char *a = trim(v), *params = "";
		char *gt = a[0] == '<' ? (char *)addr_path_end(a + 1, strlen(a + 1)) : NULL;	/* "a>b"@x */
		if (gt) {
			*gt = '\0';
			params = gt + 1;
			a++;
		}
		struct err e;
		size_t from = j->env.nrcpt;
		bool first_sender = is_sender && !*sender;
		if ((*a || is_rcpt) && addr_check(a, &e) < 0)
			*bad_line = true;
		else if (first_sender)
			*sender = xstrdup(a);
		else if (is_rcpt)
			add_written(a, j);
		if (!*bad_line && (first_sender || is_rcpt) && j->verdict != P_BAD
		    && dsn_line_params(params, &j->env, is_rcpt, from, &why) < 0)
			bad(j, why);	/* "Bad NOTIFY parameter syntax" ... */
		free(v);
		off += l + 1;
	}
}

static void owner_login(struct pjob *j)
{
	struct passwd pw, *res = NULL;
	char tmp[4096];
	if (getpwuid_r((uid_t)j->uid, &pw, tmp, sizeof tmp, &res) == 0 && res
	    && addr_is_local_name(res->pw_name))
		snprintf(j->login, sizeof j->login, "%s", res->pw_name);
	else
		snprintf(j->login, sizeof j->login, "uid%ld", j->uid);
}

/* The message as it will be queued: headers without Bcc, the fields
 * outbox adds when missing, then the body. */
static bool compose(struct pjob *j, const char *text, size_t len, bool rcpts_from_headers)
{
	struct buf crlf;
	struct header_list h;
	struct err e;
	char dom[256];
	bool ended, ok = true;
	buf_init(&crlf);
	normalize_crlf(text, len, &crlf, false, &ended);
	headers_parse(crlf.data ? crlf.data : "", crlf.len, &h);
	if (headers_envelope(&h, rcpts_from_headers ? add_written : NULL, j, &j->msg, &e) < 0)
		ok = bad(j, e.msg);
	if (ok) {
		if (!headers_find(&h, "From"))
			header_add_from(&j->msg, NULL, *j->env.sender ? j->env.sender : "MAILER-DAEMON");
		if (!headers_find(&h, "Date"))
			header_add_date(&j->msg, now_real());
		if (!headers_find(&h, "Message-ID"))
			header_add_message_id(&j->msg, addr_domain(j->conf, dom, sizeof dom));
		buf_add(&j->msg, "\r\n", 2);
		buf_add(&j->msg, crlf.data + h.body_off, crlf.len - h.body_off);
	}
	headers_free(&h);
	buf_free(&crlf);
	return ok;
}

void pickup_read_work(uv_work_t *req)
{
	struct pjob *j = req->data;
	struct stat st;
	struct buf raw;
	int fd = -1;
	char *sender = NULL;
	bool bad_line;
	buf_init(&raw);
	j->verdict = P_TAKE;
	if (!take_it(j) || !open_file(j, &fd, &st) || !read_all(j, fd, (size_t)st.st_size, &raw))
		goto out;
	j->uid = (long)st.st_uid;
	owner_login(j);
	size_t off = envelope_lines(j, raw.data ? raw.data : "", raw.len, &sender, &bad_line);
	if (bad_line || j->verdict == P_BAD) {
		if (bad_line)
			bad(j, "a bad address in an X-Sender: or X-Receiver: line");
		goto out;
	}
	bool from_headers = j->env.nrcpt == 0;
	j->env.sender = sender_rewrite(j->conf, sender, j->login);
	if (!compose(j, raw.data + off, raw.len - off, from_headers) || j->verdict == P_BAD)
		goto out;
	for (size_t i = 0; i < j->env.nrcpt && j->verdict != P_BAD; i++)
		if (addr_check(j->env.rcpt[i].addr, NULL) < 0)	/* too long once qualified */
			bad(j, "a recipient address too long once qualified");
	if (j->verdict == P_BAD)
		goto out;
	if (j->env.nrcpt == 0)
		bad(j, "no recipients (no X-Receiver: line, none in To, Cc or Bcc)");
	else if (j->env.nrcpt > j->conf->queue.max_recipients)
		bad(j, "more recipients than [queue] max_recipients");
out:
	free(sender);
	if (fd >= 0)
		close(fd);
	buf_free(&raw);
}

