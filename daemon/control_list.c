/*
 * control_list.c - QUEUE (outbox queue, mailq) and SHOW (outbox show)
 * on the control socket (control_int.h has the threads).
 *
 * A LISTING streams: the loop takes the next LIST_BATCH messages from
 * the index (an admin's walk of the index's array from a cursor, so it
 * costs no copy of the index; an ordinary user's IDs, copied from that
 * user's chain when the request came, so it costs what the user owns),
 * a pool thread reads their files and writes their lines into c->chunk
 * (stopping past CHUNK_MAX), and the loop sends the chunk and takes the
 * next batch only once the client has read most of what waits.  A
 * message delivered meanwhile is left out; one that came meanwhile may
 * or may not be listed, as with Postfix's mailq.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/dsnparam.h"
#include "../common/escape.h"
#include "../common/log.h"
#include "control_int.h"
#include "outboxd.h"

void ctl_time_text(double t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;
	localtime_r(&tt, &tm);
	strftime(out, n, "%a %b %e %H:%M:%S", &tm);
}

const char *ctl_state_word(uint8_t state)
{
	switch (state) {
	case QE_READY: return "queued";
	case QE_DEFERRED: return "deferred";
	case QE_HELD: return "held";
	case QE_BOUNCING: return "bouncing";
	default: return "active";
	}
}

static const char *rcpt_word(char status, uint8_t state)
{
	if (status == RCPT_SENT)
		return "sent";
	if (status == RCPT_FAILED)
		return "failed";
	if (status == RCPT_BOUNCING)
		return "bouncing";
	if (status == RCPT_RELAYED)
		return "relayed";
	return state == QE_DEFERRED ? "deferred" : "queued";
}

/* A JSON string of what escape.h lets through as it is; controls as
 * \u00XX (C1 ones too), other octets that are not UTF-8 as U+FFFD. */
void ctl_json_str(struct buf *b, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str);
	buf_addc(b, '"');
	for (size_t i = 0; i < n;) {
		size_t len = esc_char_len(s + i, n - i);
		if (len == 1 && (s[i] == '"' || s[i] == '\\')) {
			buf_printf(b, "\\%c", s[i]);
		} else if (len) {
			buf_add(b, s + i, len);
		} else if (s[i] < 0x20 || s[i] == 0x7f) {
			buf_printf(b, "\\u%04x", s[i]);
		} else if (s[i] == 0xc2 && i + 1 < n && s[i + 1] >= 0x80 && s[i + 1] < 0xa0) {
			buf_printf(b, "\\u%04x", s[++i]);	/* a C1 control */
		} else {
			buf_adds(b, "\\ufffd");
		}
		i += len ? len : 1;
	}
	buf_addc(b, '"');
}

/* The last reply to a pending recipient of a message tried before. */
static char *reason(struct ctl *c, const struct item *it, const struct rcpt *r)
{
	char id[QID_LEN + 1];
	if (r->status != RCPT_PENDING || !it->tries)
		return NULL;
	qid_format(it->id, id);
	return store_reason(&c->d->store, id, r->addr);
}

/* The DSN request (RFC 3461) as JSON members, each only when given:
 * RET and ENVID of the message, NOTIFY and ORCPT of a recipient.  ENVID
 * and ORCPT are the xtext they came as (printable ASCII, no space). */
static void json_dsn_mail(struct buf *b, const struct envelope *env)
{
	if (env->ret != RET_UNSET)
		buf_printf(b, ",\"ret\":\"%s\"", dsn_ret_name(env->ret));
	if (env->envid) {
		buf_adds(b, ",\"envid\":");
		ctl_json_str(b, env->envid);
	}
}

static void json_dsn_rcpt(struct buf *b, const struct rcpt *r)
{
	char n[DSN_NOTIFY_TEXT_MAX];
	if (r->notify)
		buf_printf(b, ",\"notify\":\"%s\"", dsn_notify_format(r->notify, n));
	if (r->orcpt) {
		buf_adds(b, ",\"orcpt\":");
		ctl_json_str(b, r->orcpt);
	}
}

static void list_json(struct ctl *c, const struct item *it, const struct envelope *env, uint64_t size)
{
	struct buf b;
	char id[QID_LEN + 1];
	buf_init(&b);
	qid_format(it->id, id);
	buf_printf(&b, "{\"id\":\"%s\",\"size\":%llu,\"arrival\":%.3f,\"uid\":%ld,\"sender\":", id,
		   (unsigned long long)size, env->arrival, env->uid);
	ctl_json_str(&b, env->sender);
	buf_printf(&b, ",\"state\":\"%s\",\"held\":%s,\"tries\":%u", ctl_state_word(it->state),
		   it->state == QE_HELD || qname_held(it->name) ? "true" : "false", it->tries);
	if (it->tries)
		buf_printf(&b, ",\"next_try\":%u", it->next_try);
	json_dsn_mail(&b, env);
	buf_adds(&b, ",\"recipients\":[");
	for (size_t i = 0; i < env->nrcpt; i++) {
		buf_adds(&b, i ? ",{\"address\":" : "{\"address\":");
		ctl_json_str(&b, env->rcpt[i].addr);
		buf_printf(&b, ",\"state\":\"%s\"", rcpt_word(env->rcpt[i].status, it->state));
		json_dsn_rcpt(&b, &env->rcpt[i]);
		char *why = reason(c, it, &env->rcpt[i]);
		if (why) {
			buf_adds(&b, ",\"last_reply\":");
			ctl_json_str(&b, why);
			free(why);
		}
		buf_addc(&b, '}');
	}
	buf_adds(&b, "]}");
	buf_addc(&c->chunk, '1');
	buf_addc(&c->chunk, ' ');
	buf_add(&c->chunk, b.data, b.len);	/* (JSON has no control character left to escape) */
	buf_addc(&c->chunk, '\n');
	buf_free(&b);
}

static void list_text(struct ctl *c, const struct item *it, const struct envelope *env, uint64_t size)
{
	char id[QID_LEN + 1], when[64], next[64];
	qid_format(it->id, id);
	ctl_time_text(env->arrival, when, sizeof when);
	char mark = it->state == QE_HELD ? '!' : it->state >= QE_ACTIVE ? '*' : ' ';
	ctl_put(&c->chunk, 1, "%s%c %8llu %s  %s", id, mark, (unsigned long long)size, when,
		*env->sender ? env->sender : "MAILER-DAEMON");
	if (it->tries) {
		ctl_time_text(it->next_try, next, sizeof next);
		ctl_put(&c->chunk, 1, "%18s(%s: %u %s, next try %s)", "", ctl_state_word(it->state), it->tries,
			it->tries == 1 ? "try" : "tries", it->state == QE_HELD ? "when released" : next);
	} else if (it->state == QE_HELD) {
		ctl_put(&c->chunk, 1, "%18s(held)", "");
	}
	for (size_t i = 0; i < env->nrcpt; i++) {
		char *why = reason(c, it, &env->rcpt[i]);
		bool pending = env->rcpt[i].status == RCPT_PENDING;
		if (why)	/* as mailq: the reason in parentheses, then the address */
			ctl_put(&c->chunk, 1, "%18s(%s)", "", why);
		ctl_put(&c->chunk, 1, "%44s%s%s%s", "", env->rcpt[i].addr, pending ? "" : "  ",
			pending ? "" : rcpt_word(env->rcpt[i].status, it->state));
		free(why);
	}
}

/* ---- QUEUE ---- */

static void list_next(struct ctl *c);

/* Thread: the batch's messages into c->chunk, from c->ipos on. */
static void list_work(struct ctl *c)
{
	while (c->ipos < c->nitems && c->chunk.len < CHUNK_MAX) {
		struct item *it = &c->items[c->ipos++];
		struct envelope env;
		struct err e;
		size_t off;
		uint64_t size;
		if (store_load(&c->d->store, it->name, &env, &off, NULL, &size, &e) < 0)
			continue;	/* delivered meanwhile */
		if (c->admin || env.uid == c->uid) {
			(c->json ? list_json : list_text)(c, it, &env, size);
			c->total += size;
			c->shown++;
		}
		envelope_free(&env);
	}
}

static void list_done(struct ctl *c)
{
	ctl_send(c, &c->chunk);
	if (c->closing)
		return;	/* the client went */
	if (ctl_full(c))
		c->resume = list_next;	/* once the client has read most of it */
	else
		list_next(c);
}

/* Loop: the next batch from the index, or the end. */
static void fill_batch(struct ctl *c)
{
	struct queue_index *q = &c->d->queue;
	c->nitems = c->ipos = 0;
	if (c->admin) {
		for (; c->cursor < qindex_end(q) && c->nitems < LIST_BATCH; c->cursor++)
			if (qindex_live(q, c->cursor))
				ctl_item_of(c, c->cursor, &c->items[c->nitems++]);
		return;
	}
	while (c->next_id < c->nids && c->nitems < LIST_BATCH) {
		qref r = qindex_find(q, c->ids[c->next_id++]);
		if (r)
			ctl_item_of(c, r, &c->items[c->nitems++]);
	}
}

static void list_next(struct ctl *c)
{
	if (c->closing)
		return;
	if (c->ipos >= c->nitems)
		fill_batch(c);
	if (c->nitems > c->ipos) {
		ctl_work(c, list_work, list_done);
		return;
	}
	if (!c->json)
		ctl_put(&c->out, 1, c->shown ? "-- %llu Kbytes in %zu Request%s." : "Mail queue is empty",
			(unsigned long long)((c->total + 1023) / 1024), c->shown, c->shown == 1 ? "" : "s");
	ctl_end(c);
}

/* Loop, after the permission check: where the listing starts. */
static void queue_begin(struct ctl *c)
{
	struct queue_index *q = &c->d->queue;
	c->items = xcalloc(LIST_BATCH, sizeof *c->items);
	if (!c->json)
		ctl_put(&c->out, 1, "-Queue ID-        --Size-- ----Arrival Time---- -Sender/Recipient-------");
	if (c->admin) {
		c->cursor = 1;
	} else {
		uint32_t uid = ctl_peer_quid(c);
		size_t unknown = qindex_count_of(q, QUID_UNKNOWN);
		size_t mine = uid == QUID_UNKNOWN ? 0 : qindex_count_of(q, uid);
		c->ids = xcalloc(mine + 1, sizeof *c->ids);
		for (qref r = mine ? qindex_first_of(q, uid) : 0; r; r = qindex_next_of(q, r))
			c->ids[c->nids++] = qindex_get(q, r)->id;
		if (unknown)
			ctl_put(&c->out, 2, "outbox: outboxd is still reading whose %zu of the messages found at "
				"its start are; yours among them are not listed yet", unknown);
	}
	ctl_send(c, &c->out);
	list_next(c);
}

void ctl_start_queue(struct ctl *c)
{
	ctl_with_admin(c, queue_begin);
}

/* ---- SHOW: the envelope with each recipient's state, then the header
 * section (the body is not shown) ---- */

static void show_headers(struct ctl *c, int fd, size_t off)
{
	char buf[65536];
	ssize_t n = pread(fd, buf, sizeof buf - 1, (off_t)off);
	buf[n > 0 ? n : 0] = '\0';
	char *end = strstr(buf, "\r\n\r\n");
	if (end)
		end[2] = '\0';
	for (char *p = buf, *nl; *p; p = nl ? nl + 2 : p + strlen(p)) {
		nl = strstr(p, "\r\n");
		ctl_put(&c->chunk, 1, "%.*s", (int)(nl ? nl - p : (ptrdiff_t)strlen(p)), p);
	}
}

static void show_work(struct ctl *c)
{
	struct item *it = &c->items[0];
	struct envelope env;
	uint64_t size;
	size_t off;
	int fd = -1;
	struct err e;
	c->admin = ctl_check_admin(c->uid);
	if (!ctl_may_see(c, it) || store_load(&c->d->store, it->name, &env, &off, &fd, &size, &e) < 0) {
		ctl_put(&c->chunk, 2, "outbox: %s: not in the queue", c->arg0);
		c->exit_code = 1;
		return;
	}
	char id[QID_LEN + 1], when[64];
	qid_format(it->id, id);
	ctl_time_text(env.arrival, when, sizeof when);
	ctl_put(&c->chunk, 1, "id: %s", id);
	ctl_put(&c->chunk, 1, "state: %s%s", ctl_state_word(it->state), qname_held(it->name) ? " (held)" : "");
	ctl_put(&c->chunk, 1, "arrival: %s", when);
	ctl_put(&c->chunk, 1, "uid: %ld", env.uid);
	ctl_put(&c->chunk, 1, "size: %llu", (unsigned long long)size);
	ctl_put(&c->chunk, 1, "sender: <%s>", env.sender);
	ctl_put(&c->chunk, 1, "tries: %u", it->tries);
	if (env.ret != RET_UNSET)
		ctl_put(&c->chunk, 1, "ret: %s", dsn_ret_name(env.ret));
	if (env.envid)
		ctl_put(&c->chunk, 1, "envid: %s", env.envid);
	for (size_t i = 0; i < env.nrcpt; i++) {
		const struct rcpt *r = &env.rcpt[i];
		char *why = reason(c, it, r), n[DSN_NOTIFY_TEXT_MAX];
		ctl_put(&c->chunk, 1, "recipient: <%s> %s%s%s%s%s%s%s%s", r->addr,
			rcpt_word(r->status, it->state), r->notify ? " notify=" : "",
			dsn_notify_format(r->notify, n), r->orcpt ? " orcpt=" : "", r->orcpt ? r->orcpt : "",
			why ? " (" : "", why ? why : "", why ? ")" : "");
		free(why);
	}
	ctl_put(&c->chunk, 1, "%s", "");
	show_headers(c, fd, off);
	close(fd);
	envelope_free(&env);
}

static void show_done(struct ctl *c)
{
	ctl_send(c, &c->chunk);
	ctl_end(c);
}

void ctl_start_show(struct ctl *c)
{
	c->items = xcalloc(1, sizeof *c->items);
	c->nitems = 1;
	if (!qid_valid(c->arg0)) {
		ctl_put(&c->out, 2, "outbox: %s: not a queue ID", c->arg0);
		c->exit_code = 64;
		ctl_end(c);
		return;
	}
	qref r = qindex_find(&c->d->queue, qid_value(c->arg0));
	if (r)
		ctl_item_of(c, r, &c->items[0]);
	else
		qid_format(qid_value(c->arg0), c->items[0].name);
	ctl_work(c, show_work, show_done);
}
