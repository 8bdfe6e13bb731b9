/*
 * smtp_pipe.c - the command queue of a client session (smtp_pipe.h):
 * commands queued with what their replies answer, the message octets
 * encoded for DATA or BDAT, and each reply read in order and judged once
 * (smtp_classify at the command's stage, smtp_quota_hold, the printable
 * line) into a struct smtp_answer the caller uses as a value.
 *
 * Invariants: the i-th reply read answers the i-th command queued; a
 * broken session drops every expectation and nothing more goes out;
 * every buffer is capped (a command line at SMTP_CMD_MAX, the body in
 * SMTP_BODY_CHUNK pieces, a reply by smtp_read_reply).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smtp_pipe.h"

void smtp_pipe_init(struct smtp_pipe *p, struct smtp_client *s)
{
	memset(p, 0, sizeof *p);
	p->s = s;
	p->chunk = xmalloc(SMTP_BODY_CHUNK);
	buf_init(&p->out);
	buf_init(&p->body);
}

void smtp_pipe_free(struct smtp_pipe *p)
{
	buf_free(&p->out);
	buf_free(&p->body);
	free(p->q);
	free(p->chunk);
	memset(p, 0, sizeof *p);
}

void smtp_pipe_reset(struct smtp_pipe *p)
{
	buf_reset(&p->out);
	p->head = p->n = 0;
}

bool smtp_broken(const struct smtp_client *s)
{
	return s->fail_text[0] && s->fail_code == 0;
}

static void expect(struct smtp_pipe *p, struct smtp_expect x)
{
	if (p->head + p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 64;
		p->q = xrealloc(p->q, p->cap * sizeof *p->q);
	}
	p->q[p->head + p->n++] = x;
}

void smtp_pipe_cmd(struct smtp_pipe *p, struct smtp_expect x, const char *fmt, ...)
{
	char line[SMTP_CMD_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof line - 2) {
		smtp_fail(p->s, x.st, 0, "command longer than %d octets", SMTP_CMD_MAX - 2);
		p->head = p->n = 0;
		return;
	}
	memcpy(line + n, "\r\n", 2);
	buf_add(&p->out, line, (size_t)n + 2);
	expect(p, x);
}

void smtp_pipe_flush(struct smtp_pipe *p)
{
	if (p->out.len && !smtp_broken(p->s))
		(void)smtp_send(p->s, p->out.data, p->out.len, ST_MAIL);
	buf_reset(&p->out);
}

/* A BDAT command with the encoded octets gathered so far. */
static void queue_bdat(struct smtp_pipe *p, struct smtp_expect x, bool last)
{
	buf_printf(&p->out, "BDAT %zu%s\r\n", p->body.len, last ? " LAST" : "");
	buf_add(&p->out, p->body.data, p->body.len);
	buf_reset(&p->body);
	x.last = last;
	expect(p, x);
}

uint64_t smtp_pipe_message(struct smtp_pipe *p, int fd, off_t off, uint64_t size, bool chunked,
			   struct smtp_expect x)
{
	struct stuffer st;
	struct buf *enc = chunked ? &p->body : &p->out;
	uint64_t left = size;
	bool last = false;
	stuffer_init(&st);
	st.chunked = chunked;
	buf_reset(&p->body);
	while (!last && !smtp_broken(p->s)) {
		size_t want = left < SMTP_BODY_CHUNK ? (size_t)left : SMTP_BODY_CHUNK;
		ssize_t r = want ? pread(fd, p->chunk, want, off) : 0;
		if (r < 0) {
			smtp_fail(p->s, ST_LOCAL, 0, "reading the queue file: %s", strerror(errno));
			break;
		}
		stuffer_feed(&st, p->chunk, (size_t)r, enc);
		off += r;
		left -= (uint64_t)r;
		last = r == 0 || left == 0;
		if (last)
			stuffer_end(&st, enc);
		if (chunked && (enc->len >= SMTP_BODY_CHUNK || last))
			queue_bdat(p, x, last);
		if (!chunked && last)
			expect(p, x);
		if (p->out.len >= SMTP_BODY_CHUNK)
			smtp_pipe_flush(p);
	}
	if (p->body.cap > 4 * SMTP_BODY_CHUNK)
		buf_free(&p->body);	/* do not keep a huge buffer around */
	if (p->out.cap > 4 * SMTP_BODY_CHUNK && p->out.len == 0)
		buf_free(&p->out);
	return st.lines_broken;
}

/* The answer to x in s->reply, judged. */
static void judge(const struct smtp_client *s, struct smtp_expect x, struct smtp_answer *ans)
{
	ans->x = x;
	ans->code = s->reply.code;
	ans->v = smtp_classify(x.st, ans->code);
	smtp_reply_line(&s->reply, ans->line, sizeof ans->line);
	ans->quota_hold = smtp_quota_hold(ans->code, ans->line);
}

bool smtp_pipe_read(struct smtp_pipe *p, struct smtp_answer *ans)
{
	smtp_pipe_flush(p);
	if (p->n == 0 || smtp_broken(p->s) || smtp_read_reply(p->s, p->q[p->head].st) < 0) {
		p->head = p->n = 0;
		return false;
	}
	struct smtp_expect x = p->q[p->head++];
	if (--p->n == 0)
		p->head = 0;
	judge(p->s, x, ans);
	ans->all_in = p->n == 0;
	return true;
}

void smtp_pipe_break(struct smtp_pipe *p, const struct smtp_answer *ans, const char *what)
{
	smtp_fail(p->s, ans->x.st, 0, "%s: %s", what, ans->line);
	p->head = p->n = 0;
}
