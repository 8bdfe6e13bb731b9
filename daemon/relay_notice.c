/*
 * relay_notice.c - the postmaster's notice of a relay that needs a
 * login (relay_notice.h).
 *
 * Made on the thread pool (the domain may need the resolver, [aliases]
 * the configuration), committed on the loop through the intake (way
 * "bounce", the null sender: a notice that fails makes no report of its
 * own to anyone but the postmaster, whom it was for: never a loop).
 * It goes like any mail: through the relay that takes the null sender,
 * which may be the very relay that waits for the login; then it waits
 * with the rest and arrives once the login is done, while the log and
 * outbox status say it at once.  A notice that cannot be queued (a full
 * disk) is logged, not retried: the log line says the same.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "../common/address.h"
#include "../common/config.h"
#include "../common/rewrite.h"
#include "../common/log.h"
#include "intake.h"
#include "relay_notice.h"

struct notice {
	uv_work_t req;
	struct intake_ctx *ic;
	struct config *conf;	/* a reference, for the thread */
	char relay[64], command[80], why[400];
	struct envelope env;
	struct buf msg;
	struct intake in;
	char failed[512];	/* made on the thread: why it could not be */
};

static void notice_free(struct notice *n)
{
	envelope_free(&n->env);
	buf_free(&n->msg);
	config_unref(n->conf);
	free(n);
}

static void add_rcpt(const char *addr, void *arg)
{
	envelope_add_rcpt(arg, addr);
}

/* Control characters out: the text came from the endpoint (escaped) or the file. */
static void plain(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

static void make_work(uv_work_t *req)
{
	struct notice *n = req->data;
	const struct config *c = n->conf;
	struct err e;
	char dom[256], date[64];
	const char *to = *c->address.postmaster ? c->address.postmaster : "root";
	if (rcpt_expand(c, to, add_rcpt, &n->env, &e) < 0 || n->env.nrcpt == 0) {
		snprintf(n->failed, sizeof n->failed, "no postmaster to tell (%.400s)", n->env.nrcpt ? "" : e.msg);
		return;
	}
	addr_domain(c, dom, sizeof dom);
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
	plain(n->why);
	struct buf *b = &n->msg;
	buf_printf(b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\nTo: <%s>\r\n", dom, n->env.rcpt[0].addr);
	buf_printf(b, "Subject: outbox: relay %s needs a new OAuth2 login\r\nDate: %s\r\n", n->relay, date);
	buf_printf(b, "Message-ID: <%llx.%ld.login@%s>\r\n", (unsigned long long)(now_real() * 1e6),
		   (long)getpid(), dom);
	buf_printf(b, "Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
		      "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	buf_printf(b, "The OAuth2 token endpoint of relay %s refused its refresh token\r\n"
		      "(revoked, the password changed, or a 7-day token of an app in\r\n"
		      "\"testing\" status expired):\r\n\r\n    %s\r\n\r\n", n->relay, n->why);
	buf_printf(b, "Mail through this relay waits in the queue: it is deferred, not bounced.\r\n"
		      "To let it go, log in again, as root:\r\n\r\n    %s\r\n\r\n"
		      "outboxd notices the new refresh token at once and sends the mail.\r\n"
		      "This notice is sent once; another comes only if the relay works\r\n"
		      "again and then fails the same way.\r\n", n->command);
}

static void committed(struct intake *in, void *arg)
{
	struct notice *n = arg;
	if (in->rc == 0)
		log_notice("relay %s: the postmaster's notice queued as %s to <%s>", n->relay, intake_id(in),
			   n->env.rcpt[0].addr);
	else
		log_err("relay %s: cannot queue the postmaster's notice: %s", n->relay, in->err.msg);
	intake_free(in);
	notice_free(n);
}

static void make_done(uv_work_t *req, int status)
{
	struct notice *n = req->data;
	struct err e;
	(void)status;
	if (*n->failed) {
		log_err("relay %s: cannot tell the postmaster it needs a login: %s", n->relay, n->failed);
		notice_free(n);
		return;
	}
	struct origin o = { .way = WAY_BOUNCE, .uid = -1, .login = "", .helo = "", .peer = "", .id = NULL };
	if (intake_begin(n->ic, &n->in, &n->env, &o, &e) < 0) {
		log_err("relay %s: cannot queue the postmaster's notice: %s", n->relay, e.msg);
		notice_free(n);
		return;
	}
	intake_write(&n->in, n->msg.data, n->msg.len);
	intake_commit(&n->in, committed, n);
}

void relay_notice_send(struct intake_ctx *ic, const char *relay, const char *command, const char *why)
{
	struct notice *n = xcalloc(1, sizeof *n);
	n->ic = ic;
	n->conf = config_ref(*ic->conf);
	snprintf(n->relay, sizeof n->relay, "%s", relay);
	snprintf(n->command, sizeof n->command, "%s", command);
	snprintf(n->why, sizeof n->why, "%s", why);
	envelope_init(&n->env);
	n->env.sender = xstrdup("");
	buf_init(&n->msg);
	n->req.data = n;
	uv_queue_work(ic->loop, &n->req, make_work, make_done);
}
