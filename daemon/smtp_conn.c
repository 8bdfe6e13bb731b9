/*
 * smtp_conn.c - what every part of the SMTP server session stands on
 * (smtp_conn.h): its replies queued and written (uv_try_write, then
 * uv_write for the rest), the transaction forgotten, its close and its
 * end once no handle is open.  Calls no function of smtp_session.c or
 * smtp_commands.c: when a write completes, the reader is resumed
 * through s->resume.
 *
 * Invariant: a session is freed only when both its handles are closed,
 * and closed only when no work (commit, flush, name lookup) is in
 * flight.  Loop thread.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "outboxd.h"
#include "smtp_conn.h"

/* ---- output ---- */

void sess_reply(struct session *s, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	buf_adds(&s->out, line);
	buf_add(&s->out, "\r\n", 2);
	if (line[0] == '4' || line[0] == '5')
		s->bad_commands++;
}

struct write_req {
	uv_write_t req;
	struct session *s;
	char data[];
};

static void on_written(uv_write_t *req, int status)
{
	struct write_req *wr = (struct write_req *)req;
	struct session *s = wr->s;
	free(wr);
	if (status < 0 && s->state != S_CLOSING) {
		log_debug("%s: write failed: %s", s->peer, uv_strerror(status));
		sess_close(s);
		return;
	}
	if (s->state != S_CLOSING && !s->reading && s->state != S_COMMIT)
		s->resume(s);	/* the reader's turn (smtp_session.c) */
}

void sess_flush(struct session *s)
{
	if (s->out.len == 0 || uv_is_closing(&s->h.handle))
		return;
	uv_buf_t b = uv_buf_init(s->out.data, (unsigned)s->out.len);
	int n = uv_try_write(&s->h.stream, &b, 1);
	size_t done = n > 0 ? (size_t)n : 0;
	if (done < s->out.len) {
		struct write_req *wr = xmalloc(sizeof *wr + s->out.len - done);
		wr->s = s;
		memcpy(wr->data, s->out.data + done, s->out.len - done);
		b = uv_buf_init(wr->data, (unsigned)(s->out.len - done));
		int rc = uv_write(&wr->req, &s->h.stream, &b, 1, on_written);
		if (rc < 0) {
			free(wr);
			buf_reset(&s->out);
			sess_close(s);
			return;
		}
	}
	if (s->out.cap > 2 * OUT_HIGH_WATER)
		buf_free(&s->out);	/* a burst of replies: do not keep its buffer */
	buf_reset(&s->out);
}

/* ---- the transaction, and the end ---- */

void sess_tx_reset(struct session *s)
{
	if (s->writing)
		intake_abort(&s->intake);
	s->writing = false;
	envelope_free(&s->env);
	s->in_tx = false;
	s->smtputf8 = false;
	s->declared_size = 0;
	s->data_bytes = 0;
	s->too_big = false;
}

bool sess_no_room_after(struct session *s, const struct err *e)
{
	if (!store_error_is_storage(e->sys))
		return false;
	intake_room_failed(&s->d->intake, e);
	return true;
}

bool sess_helo_name_ok(const char *h)
{
	if (!*h || strlen(h) > 255)
		return false;
	for (; *h; h++)
		if (!isalnum((unsigned char)*h) && !strchr(".-_:[]", *h))
			return false;
	return true;
}

static void on_handle_closed(uv_handle_t *h)
{
	struct session *s = h->data;
	if (--s->open_handles > 0)
		return;
	if (s->prev)
		s->prev->next = s->next;
	else
		s->d->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->d->nsessions--;
	sess_tx_reset(s);
	buf_free(&s->in);
	buf_free(&s->out);
	buf_free(&s->scratch);
	struct daemon *d = s->d;
	free(s);
	d->part_stopped(d);
}

void sess_close(struct session *s)
{
	if (uv_is_closing(&s->h.handle))
		return;
	s->state = S_CLOSING;
	if (s->works > 0)
		return;	/* commit_done(), flush_done(), lookup_done() call us again */
	uv_read_stop(&s->h.stream);
	s->reading = false;
	uv_close((uv_handle_t *)&s->idle, on_handle_closed);
	uv_close(&s->h.handle, on_handle_closed);
}
