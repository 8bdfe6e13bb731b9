/*
 * engine_fake.h - a scripted upstream for the transaction engine
 * (daemon/transfer.c), shared by tests/unit/test_transfer.c and
 * tests/fuzz/fuzz_transfer.c.
 *
 * The engine runs over the real SMTP client (smtp_client.c: its reply
 * reader and classifier) on a fake connection: the binaries are linked
 * with -Wl,--wrap=net_write,--wrap=net_fill, so every octet the engine
 * writes is recorded in wire.out, and each read gets the next wire.step
 * octets of the reply script (0: all that is left; at the end: "lost
 * connection").  The messages are attempts made here (their bodies in
 * memfd files), handed out and taken back by a fake source that counts
 * how often each came back and keeps each recipient's result.
 */
#ifndef OUTBOX_ENGINE_FAKE_H
#define OUTBOX_ENGINE_FAKE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../common/net.h"
#include "../../daemon/attempt.h"
#include "../../daemon/transfer.h"

/* ---- the connection ---- */

static struct fake_wire {
	const char *script;	/* the replies, in order */
	size_t len, pos;
	size_t step;		/* octets per read; 0: all */
	struct buf out;		/* what the engine wrote */
} wire;

int __wrap_net_write(struct netconn *c, const void *p, size_t n, struct err *e);
int __wrap_net_fill(struct netconn *c, struct err *e);

int __wrap_net_write(struct netconn *c, const void *p, size_t n, struct err *e)
{
	(void)c;
	(void)e;
	buf_add(&wire.out, p, n);
	return 0;
}

int __wrap_net_fill(struct netconn *c, struct err *e)
{
	if (wire.pos >= wire.len)
		return err_set(e, "lost connection with the server");
	size_t n = wire.len - wire.pos;
	if (wire.step && n > wire.step)
		n = wire.step;
	buf_reserve(&c->in, n + 1);
	memcpy(c->in.data + c->in.len, wire.script + wire.pos, n);
	c->in.len += n;
	c->in.data[c->in.len] = '\0';
	wire.pos += n;
	return 0;
}

/* A fresh wire with this script, and a session on it offering ext. */
static void wire_start(struct smtp_client *s, const char *script, size_t len, size_t step, unsigned ext)
{
	buf_free(&wire.out);
	buf_init(&wire.out);
	wire.script = script;
	wire.len = len;
	wire.pos = 0;
	wire.step = step;
	smtp_client_init(s);
	s->open = true;
	s->ext = ext;
	snprintf(s->relay, sizeof s->relay, "fake[127.0.0.1]:25");
}

/* ---- the messages and the source ---- */

#define FAKE_MSGS 16

struct fake_source {
	struct attempt msg[FAKE_MSGS];	/* loaded, not yet handed out */
	size_t n, next;
	size_t given[FAKE_MSGS], back[FAKE_MSGS];	/* handed out, handed back */
	enum outcome state[FAKE_MSGS][8];	/* each recipient's result when handed back */
	char why[FAKE_MSGS][8][80];
	size_t limit;		/* hand out no more than this many (0: all) */
};

/* Message k: its id "mK", sender, recipients and body (in a memfd). */
static void fake_add(struct fake_source *src, const char *sender, const char *const *rcpt, size_t nrcpt,
		     const char *body, size_t blen)
{
	struct attempt *a = &src->msg[src->n];
	memset(a, 0, sizeof *a);
	snprintf(a->id, sizeof a->id, "m%zu", src->n);
	envelope_init(&a->env);
	a->env.sender = xstrdup(sender);
	for (size_t i = 0; i < nrcpt; i++)
		envelope_add_rcpt(&a->env, rcpt[i]);
	a->res = xcalloc(nrcpt, sizeof *a->res);
	a->fd = memfd_create("body", 0);
	if (a->fd < 0 || write(a->fd, body, blen) != (ssize_t)blen)
		abort();
	a->size = blen;
	src->n++;
}

static size_t fake_index(const struct attempt *a)
{
	return (size_t)strtoul(a->id + 1, NULL, 10);
}

static bool fake_next(void *arg, struct attempt *a, size_t batched)
{
	struct fake_source *src = arg;
	(void)batched;
	if (src->next >= src->n || (src->limit && src->next >= src->limit))
		return false;
	src->given[src->next]++;
	*a = src->msg[src->next++];
	return true;
}

static void fake_done(void *arg, struct attempt *a)
{
	struct fake_source *src = arg;
	size_t k = fake_index(a);
	if (k >= src->n)
		abort();
	src->back[k]++;
	for (size_t i = 0; i < a->env.nrcpt && i < 8; i++) {
		src->state[k][i] = a->res[i].state;
		snprintf(src->why[k][i], sizeof src->why[k][i], "%s", a->res[i].why ? a->res[i].why : "");
	}
	attempt_free(a);
}

/* One run of the engine over what src holds: the first message, then
 * whatever the source hands out.  False when src had none left. */
static bool fake_run(struct transfer *t, struct fake_source *src, bool chunked, struct transfer_result *res)
{
	struct attempt first;
	if (!fake_next(src, &first, 0))
		return false;
	const struct transfer_source ts = { fake_next, fake_done, src };
	transfer_run(t, &first, &ts, chunked, res);
	return true;
}

/* Free the messages never handed out. */
static void fake_source_free(struct fake_source *src)
{
	for (size_t k = src->next; k < src->n; k++)
		attempt_free(&src->msg[k]);
	memset(src, 0, sizeof *src);
}

#endif
