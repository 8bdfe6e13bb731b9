/*
 * smtp_session.c - the SMTP server session of the submission listeners.
 *
 * One session per accepted connection, an explicit state machine:
 *
 *   CMD ──DATA+354──> DATA ──<CRLF>.<CRLF>──> COMMIT ──fsync done──> CMD
 *    │                                              (250 or 451)
 *    └─QUIT/error/idle──> CLOSING
 *
 * Commands are read one line at a time from the input buffer, so a
 * client may pipeline (RFC 2920); replies are gathered and written once
 * the buffered input is used up, or once OUT_HIGH_WATER octets of
 * replies wait: then no command runs and nothing is read until the
 * client has read them.  While a message is committing, input is not
 * parsed (the 250 must come before any later reply); it is only
 * buffered, up to IN_HIGH_WATER.
 *
 * Invariants:
 *  - the message goes into the queue through intake.h only, and "250 ...
 *    queued as ID" is sent only from its commit callback, after the
 *    commit succeeded (file and directory fsync'd);
 *  - limits hold while reading: command lines (SMTP_CMD_LINE_MAX), text
 *    lines (SMTP_TEXT_LINE_MAX), message size (SIZE) and recipients;
 *    breaking one costs the client that message, never the session;
 *  - DATA ends only on <CRLF>.<CRLF> (see smtp.h);
 *  - a session is freed only when its handles are closed and no work
 *    (commit, flush, name lookup) is in flight;
 *  - nothing on the loop thread waits for the disk or the name service:
 *    a large message's octets are written, and the uid's login name is
 *    looked up, on the thread pool.
 */
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "../common/address.h"
#include "../common/rewrite.h"
#include "../common/log.h"
#include "../common/smtp.h"
#include "../common/units.h"
#include "intake.h"
#include "outboxd.h"
#include "sessions.h"

#define MAX_BAD_COMMANDS 20
#define OUT_HIGH_WATER (64 * 1024)	/* replies waiting: ~2000 pipelined ones */
#define IN_HIGH_WATER (256 * 1024)

enum sess_state { S_CMD, S_DATA, S_COMMIT, S_CLOSING };

struct session {
	union {
		uv_pipe_t pipe;
		uv_tcp_t tcp;
		uv_stream_t stream;
		uv_handle_t handle;
	} h;
	uv_timer_t idle;
	struct daemon *d;
	struct session *prev, *next;
	enum sess_state state;
	int open_handles;
	bool is_unix;
	bool reading;
	bool committing;	/* a commit is on the thread pool */
	bool flushing;		/* message octets are being written on the thread pool */
	int works;		/* thread-pool work in flight: the session waits for it */
	bool looking_up;	/* the login name is being looked up: DATA waits */
	uv_work_t lookup_req;
	char login[64];		/* the uid's login name, once looked up ("" if none) */
	bool discard_line;	/* skipping the rest of an over-long command */
	long uid;		/* SO_PEERCRED uid, -1 over TCP */
	char peer[80];		/* for logs: "uid 1000" or "[127.0.0.1]:4455" */
	char helo[256];		/* "" until EHLO/HELO */
	bool esmtp;
	int bad_commands;
	struct buf in, out, scratch;

	/* the transaction */
	bool in_tx;
	struct envelope env;
	bool smtputf8;
	uint64_t declared_size;
	struct data_reader dr;
	struct intake intake;	/* the message on its way into the queue */
	bool writing;		/* intake begun, not committed or aborted */
	uint64_t data_bytes;
	bool too_big;
};

static void session_close(struct session *s);
static void process_input(struct session *s);

/* ---- output ---- */

static void reply(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reply(struct session *s, const char *fmt, ...)
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
		session_close(s);
		return;
	}
	if (s->state != S_CLOSING && !s->reading && s->state != S_COMMIT)
		process_input(s);
}

static void flush_out(struct session *s)
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
			session_close(s);
			return;
		}
	}
	if (s->out.cap > 2 * OUT_HIGH_WATER)
		buf_free(&s->out);	/* a burst of replies: do not keep its buffer */
	buf_reset(&s->out);
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct session *s = h->data;
	(void)suggested;
	buf_reserve(&s->in, 64 * 1024);
	*b = uv_buf_init(s->in.data + s->in.len, (unsigned)(s->in.cap - s->in.len - 1));
}

static void on_idle_timeout(uv_timer_t *t);

static void idle_restart(struct session *s)
{
	uv_timer_start(&s->idle, on_idle_timeout, s->d->conf->listen.idle_timeout * 1000, 0);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct session *s = st->data;
	(void)b;
	if (n < 0) {
		if (n != UV_EOF)
			log_debug("%s: read: %s", s->peer, uv_strerror((int)n));
		if (s->state == S_DATA)
			log_info("%s: lost connection after DATA (%llu bytes)", s->peer,
				 (unsigned long long)s->data_bytes);
		session_close(s);
		return;
	}
	if (n == 0)
		return;
	s->in.len += (size_t)n;
	s->in.data[s->in.len] = '\0';
	idle_restart(s);
	process_input(s);
}

static void reading(struct session *s, bool on)
{
	if (on == s->reading || s->state == S_CLOSING)
		return;
	s->reading = on;
	if (on)
		uv_read_start(&s->h.stream, on_alloc, on_read);
	else
		uv_read_stop(&s->h.stream);
}

/* ---- the transaction ---- */

static void tx_reset(struct session *s)
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

static void add_rcpt(const char *addr, void *arg)
{
	struct session *s = arg;
	for (size_t i = 0; i < s->env.nrcpt; i++)
		if (strcasecmp(s->env.rcpt[i].addr, addr) == 0)
			return;	/* the same recipient twice gets one copy */
	envelope_add_rcpt(&s->env, addr);
}

/* ---- room on the spool ---- */

#define NO_ROOM "452 4.3.1 Error: insufficient system storage"

/* Below [queue] min_free (with need octets more to come), or after a
 * write that failed for want of room: the client gets 452 4.3.1 until
 * there is room (the intake says so in the log, once each way). */
static bool no_room(struct session *s, uint64_t need)
{
	return !intake_room(&s->d->intake, need);
}

/* Did the intake fail for want of room (below min_free, ENOSPC, EIO)? */
static bool no_room_after(struct session *s, const struct err *e)
{
	if (!store_error_is_storage(e->sys))
		return false;
	intake_room_failed(&s->d->intake, e);
	return true;
}

/* ---- commands ---- */

static bool helo_name_ok(const char *h)
{
	if (!*h || strlen(h) > 255)
		return false;
	for (; *h; h++)
		if (!isalnum((unsigned char)*h) && !strchr(".-_:[]", *h))
			return false;
	return true;
}

static void cmd_helo(struct session *s, const char *arg, bool esmtp)
{
	char size[32];
	if (!*arg) {
		reply(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
		return;
	}
	tx_reset(s);
	snprintf(s->helo, sizeof s->helo, "%s", helo_name_ok(arg) ? arg : "unknown");
	s->esmtp = esmtp;
	if (!esmtp) {
		reply(s, "250 %s", s->d->hostname);
		return;
	}
	snprintf(size, sizeof size, "%llu", (unsigned long long)s->d->conf->queue.max_message_size);
	reply(s, "250-%s", s->d->hostname);
	reply(s, "250-PIPELINING");
	reply(s, "250-SIZE %s", size);
	reply(s, "250-8BITMIME");
	reply(s, "250-SMTPUTF8");
	reply(s, "250-ENHANCEDSTATUSCODES");
	reply(s, "250 HELP");
}

/* ESMTP parameters of MAIL FROM; returns 0 or sends the error reply. */
static int mail_params(struct session *s, const char *p)
{
	char tmp[SMTP_CMD_LINE_MAX];
	snprintf(tmp, sizeof tmp, "%s", p);
	char *save = NULL;
	for (char *t = strtok_r(tmp, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		size_t k;
		if ((k = prefix_ci(t, "SIZE="))) {
			uint64_t v;
			if (parse_uint(t + k, UINT64_MAX, &v) < 0) {
				reply(s, "501 5.5.4 Bad SIZE parameter");
				return -1;
			}
			s->declared_size = v;
		} else if ((k = prefix_ci(t, "BODY="))) {
			if (strcasecmp(t + k, "7BIT") != 0 && strcasecmp(t + k, "8BITMIME") != 0) {
				reply(s, "501 5.5.4 Bad BODY parameter");
				return -1;
			}
		} else if (strcasecmp(t, "SMTPUTF8") == 0) {
			s->smtputf8 = true;
		} else {
			reply(s, "555 5.5.4 Unsupported parameter");
			return -1;
		}
	}
	if (s->declared_size > s->d->conf->queue.max_message_size) {
		reply(s, "552 5.3.4 Message size exceeds fixed limit");
		return -1;
	}
	return 0;
}

static void cmd_mail(struct session *s, const char *arg)
{
	char addr[ADDR_MAX + 1];
	const char *params;
	struct err e;
	size_t k = prefix_ci(arg, "FROM:");
	if (!s->helo[0]) {
		reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->in_tx) {
		reply(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (!k) {
		reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	if (smtp_path_parse(arg + k, true, addr, sizeof addr, &params, &e) < 0) {
		reply(s, "501 5.1.7 Bad sender address syntax: %s", e.msg);
		return;
	}
	if (*params && (!s->esmtp || mail_params(s, params) < 0)) {
		if (!s->esmtp)
			reply(s, "555 5.5.4 Parameters need EHLO");
		s->smtputf8 = false;
		s->declared_size = 0;
		return;
	}
	if (no_room(s, s->declared_size)) {
		reply(s, NO_ROOM);
		s->smtputf8 = false;
		s->declared_size = 0;
		return;
	}
	char *sender = sender_rewrite(s->d->conf, addr, NULL);
	if (*sender && addr_check(sender, &e) < 0) {
		free(sender);
		reply(s, "553 5.1.7 Error: sender address once qualified: %s", e.msg);
		s->smtputf8 = false;
		s->declared_size = 0;
		return;
	}
	envelope_init(&s->env);
	s->env.sender = sender;
	s->in_tx = true;
	reply(s, "250 2.1.0 Ok");
}

static void cmd_rcpt(struct session *s, const char *arg)
{
	char addr[ADDR_MAX + 1];
	const char *params;
	struct err e;
	size_t k = prefix_ci(arg, "TO:");
	if (!s->in_tx) {
		reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (!k) {
		reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	if (smtp_path_parse(arg + k, false, addr, sizeof addr, &params, &e) < 0) {
		reply(s, "501 5.1.3 Bad recipient address syntax: %s", e.msg);
		return;
	}
	if (*params) {
		reply(s, "555 5.5.4 Unsupported parameter");
		return;
	}
	size_t before = s->env.nrcpt;
	bool bad = rcpt_expand(s->d->conf, addr, add_rcpt, s, &e) < 0;
	/* or qualified or aliased beyond what a queue file takes */
	for (size_t i = before; i < s->env.nrcpt && !bad; i++)
		bad = addr_check(s->env.rcpt[i].addr, &e) < 0;
	bool too_many = s->env.nrcpt > s->d->conf->queue.max_recipients;
	if (bad || too_many)
		while (s->env.nrcpt > before)	/* take this RCPT back whole */
			free(s->env.rcpt[--s->env.nrcpt].addr);
	if (bad)
		reply(s, "553 5.1.3 Error: recipient address once qualified: %s", e.msg);
	else if (too_many)
		reply(s, "452 4.5.3 Error: too many recipients");
	else
		reply(s, "250 2.1.5 Ok");
}


static void cmd_data(struct session *s, const char *arg)
{
	struct err e;
	if (*arg) {
		reply(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (!s->in_tx) {
		reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->env.nrcpt == 0) {
		reply(s, "554 5.5.1 Error: no valid recipients");
		return;
	}
	if (no_room(s, s->declared_size)) {
		reply(s, NO_ROOM);
		return;
	}
	struct origin o = { .way = s->is_unix ? WAY_SOCKET : WAY_TCP, .uid = s->uid,
			    .login = s->login, .helo = s->helo, .peer = s->is_unix ? "" : s->peer,
			    .esmtp = s->esmtp, .smtputf8 = s->smtputf8 };
	if (intake_begin(&s->d->intake, &s->intake, &s->env, &o, &e) < 0) {
		log_err("%s: cannot queue: %s", s->peer, e.msg);
		reply(s, no_room_after(s, &e) ? NO_ROOM : "451 4.3.0 Error: queue file write error");
		return;
	}
	s->writing = true;
	data_reader_init(&s->dr);
	s->state = S_DATA;
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void cmd_rset(struct session *s)
{
	tx_reset(s);
	reply(s, "250 2.0.0 Ok");
}

static void dispatch(struct session *s, char *line)
{
	static const struct {
		const char *verb;
		int kind;
	} verbs[] = {
		{ "EHLO", 1 }, { "HELO", 2 }, { "MAIL", 3 }, { "RCPT", 4 }, { "DATA", 5 },
		{ "RSET", 6 }, { "NOOP", 7 }, { "QUIT", 8 }, { "VRFY", 9 }, { "HELP", 10 },
		{ "EXPN", 11 }, { "STARTTLS", 12 }, { "AUTH", 12 }, { "BDAT", 12 }, { "ETRN", 12 },
	};
	size_t vlen = strcspn(line, " ");
	const char *arg = line + vlen;
	while (*arg == ' ')
		arg++;
	int kind = 0;
	for (size_t i = 0; i < ARRAY_LEN(verbs); i++)
		if (strlen(verbs[i].verb) == vlen && strncasecmp(line, verbs[i].verb, vlen) == 0)
			kind = verbs[i].kind;
	switch (kind) {
	case 1: cmd_helo(s, arg, true); return;
	case 2: cmd_helo(s, arg, false); return;
	case 3: cmd_mail(s, arg); break;
	case 4: cmd_rcpt(s, arg); break;
	case 5: cmd_data(s, arg); return;
	case 6: cmd_rset(s); return;
	case 7: reply(s, "250 2.0.0 Ok"); return;
	case 8:
		reply(s, "221 2.0.0 Bye");
		flush_out(s);
		session_close(s);
		return;
	case 9: reply(s, "252 2.5.2 Cannot VRFY user, but will accept message"); return;
	case 10: reply(s, "214 2.0.0 See RFC 5321; commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY"); return;
	case 11: reply(s, "502 5.5.1 EXPN not available"); break;
	case 12: reply(s, "502 5.5.1 Error: command not implemented"); break;
	default: reply(s, "500 5.5.2 Error: command not recognized"); break;
	}
	if (s->bad_commands >= MAX_BAD_COMMANDS) {
		reply(s, "421 4.7.0 %s Error: too many errors", s->d->hostname);
		flush_out(s);
		session_close(s);
	}
}

/* ---- commit ---- */

/* Hand work to the thread pool; the session is not freed until done
 * runs (session_close waits while works > 0). */
static void start_work(struct session *s, uv_work_t *req, uv_work_cb work, uv_after_work_cb done)
{
	s->works++;
	req->data = s;
	uv_queue_work(s->d->loop, req, work, done);
}

/* The commit is done (intake.c logs, indexes and schedules the message
 * after this reply). */
static void commit_done(struct intake *in, void *arg)
{
	struct session *s = arg;
	s->writing = false;
	s->committing = false;
	s->works--;
	if (in->rc == 0) {
		if (s->state != S_CLOSING) {
			reply(s, "250 2.0.0 Ok: queued as %s", intake_id(in));
			flush_out(s);
		}
	} else {
		log_err("%s: cannot queue message: %s", s->peer, in->err.msg);
		bool full = no_room_after(s, &in->err);
		if (s->state != S_CLOSING)
			reply(s, full ? NO_ROOM : "451 4.3.0 Error: queue file write error");
	}
	intake_free(in);
	tx_reset(s);
	if (s->state == S_CLOSING) {
		session_close(s);	/* finish the close that waited for us */
		return;
	}
	s->state = S_CMD;
	idle_restart(s);	/* the timer may have fired, unheeded, during the commit */
	if (s->d->stopping) {
		reply(s, "421 4.3.2 %s Service shutting down", s->d->hostname);
		flush_out(s);
		session_close(s);
		return;
	}
	process_input(s);
}

static void end_of_data(struct session *s)
{
	const char *reject = NULL;
	if (s->too_big)
		reject = "552 5.3.4 Error: message file too big";
	else if (s->dr.line_too_long)
		reject = "552 5.3.4 Error: message line too long (limit 65536 octets)";
	if (reject) {
		log_info("%s: message rejected: %s", s->peer, reject + 10);
		reply(s, "%s", reject);
		tx_reset(s);
		s->state = S_CMD;
		return;
	}
	if (s->dr.eight_bit)
		intake_add_flags(&s->intake, ENV_8BITMIME);
	if (s->dr.nul_dropped)
		log_info("%s: %llu NUL octets removed", intake_id(&s->intake),
			 (unsigned long long)s->dr.nul_dropped);
	s->state = S_COMMIT;
	s->committing = true;
	s->works++;
	intake_commit(&s->intake, commit_done, s);
}

/* ---- disk and name service work, off the loop thread ---- */

static void flush_done(struct intake *in, void *arg)
{
	struct session *s = arg;
	(void)in;
	s->flushing = false;
	s->works--;
	if (s->state == S_CLOSING)
		session_close(s);	/* finish the close that waited for us */
	else
		process_input(s);
}

/* A large message: its octets so far go to the file on the thread pool;
 * no more data is taken until they are written (memory stays bounded). */
static void start_flush(struct session *s)
{
	s->flushing = true;
	s->works++;
	intake_flush(&s->intake, flush_done, s);
}

/* The login name for the Received: line, looked up (NSS may block for
 * long) while the client says EHLO, MAIL and RCPT. */
static void lookup_work(uv_work_t *req)
{
	struct session *s = req->data;
	struct passwd pw, *res = NULL;
	char tmp[4096];
	if (getpwuid_r((uid_t)s->uid, &pw, tmp, sizeof tmp, &res) == 0 && res
	    && helo_name_ok(res->pw_name))
		snprintf(s->login, sizeof s->login, "%s", res->pw_name);
}

static void lookup_done(uv_work_t *req, int status)
{
	struct session *s = req->data;
	(void)status;
	s->works--;
	s->looking_up = false;
	if (s->state == S_CLOSING)
		session_close(s);
	else
		process_input(s);	/* a DATA may be waiting */
}

static void start_lookup(struct session *s)
{
	s->looking_up = true;
	start_work(s, &s->lookup_req, lookup_work, lookup_done);
}

static void process_data(struct session *s)
{
	bool done;
	buf_reset(&s->scratch);
	size_t used = data_reader_feed(&s->dr, s->in.data, s->in.len, &s->scratch, &done);
	buf_consume(&s->in, used);
	s->data_bytes += s->scratch.len;
	if (!s->too_big && s->data_bytes > s->d->conf->queue.max_message_size) {
		s->too_big = true;
		intake_abort(&s->intake);
		s->writing = false;
	}
	if (s->writing && !s->too_big && !s->dr.line_too_long)
		intake_write(&s->intake, s->scratch.data, s->scratch.len);
	if (done)
		end_of_data(s);
	else if (s->writing && intake_flush_due(&s->intake))
		start_flush(s);
}

/* One command line from the input buffer; false when none is complete. */
static bool process_command_line(struct session *s)
{
	char *nl = memchr(s->in.data, '\n', s->in.len);
	if (!nl) {
		if (s->in.len >= SMTP_CMD_LINE_MAX) {
			if (!s->discard_line)
				reply(s, "500 5.5.2 Error: line too long");
			s->discard_line = true;
			buf_reset(&s->in);
		}
		return false;
	}
	size_t used = (size_t)(nl - s->in.data) + 1;
	size_t len = used - 1;
	if (len > 0 && s->in.data[len - 1] == '\r')
		len--;
	char *line = xstrndup(s->in.data, len);
	buf_consume(&s->in, used);
	if (s->discard_line)
		s->discard_line = false;
	else if (len >= SMTP_CMD_LINE_MAX)
		reply(s, "500 5.5.2 Error: line too long");
	else if (strlen(line) != len)
		reply(s, "500 5.5.2 Error: NUL in command");
	else
		dispatch(s, line);
	free(line);
	return true;
}

/* Replies waiting to be written, ours or in libuv's queue. */
static size_t output_pending(const struct session *s)
{
	return s->out.len + s->h.stream.write_queue_size;
}

/* Run the buffered commands (or message data); true when it stopped
 * because OUT_HIGH_WATER octets of replies wait. */
static bool run_input(struct session *s)
{
	while (s->state == S_CMD || s->state == S_DATA) {
		if (output_pending(s) >= OUT_HIGH_WATER)
			return true;
		if (s->flushing)
			break;	/* flush_done() goes on */
		if (s->looking_up && s->state == S_CMD && s->in.len >= 4
		    && strncasecmp(s->in.data, "DATA", 4) == 0)
			break;	/* the Received: line needs the name: lookup_done() goes on */
		if (s->state == S_DATA) {
			if (s->in.len == 0)
				break;
			process_data(s);
			continue;
		}
		if (s->in.len == 0 || !process_command_line(s))
			break;
	}
	return false;
}

static void process_input(struct session *s)
{
	/* a client that pipelines without reading its replies gets no more
	 * commands run (nor read) until they drain: memory stays bounded */
	bool stalled;
	do {
		stalled = run_input(s);
		if (s->state == S_CLOSING)
			return;
		flush_out(s);	/* may write it all at once: then go on */
	} while (stalled && output_pending(s) < OUT_HIGH_WATER);
	/* Input is not parsed while a commit runs (its 250 comes first), but
	 * reading goes on unless the client piles up too much meanwhile or
	 * does not read its replies. */
	bool backlog = output_pending(s) >= OUT_HIGH_WATER || s->in.len > IN_HIGH_WATER;
	reading(s, !backlog);
}

/* ---- life cycle ---- */

static void on_idle_timeout(uv_timer_t *t)
{
	struct session *s = t->data;
	if (s->committing || s->flushing || s->state == S_CLOSING)
		return;
	log_info("%s: idle timeout", s->peer);
	reply(s, "421 4.4.2 %s Error: timeout exceeded", s->d->hostname);
	flush_out(s);
	session_close(s);
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
	tx_reset(s);
	buf_free(&s->in);
	buf_free(&s->out);
	buf_free(&s->scratch);
	struct daemon *d = s->d;
	free(s);
	d->part_stopped(d);
}

static void session_close(struct session *s)
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

static void peer_identity(struct session *s)
{
	if (s->is_unix) {
		struct ucred cred;
		socklen_t len = sizeof cred;
		uv_os_fd_t fd;
		s->uid = -1;
		if (uv_fileno(&s->h.handle, &fd) == 0
		    && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
			s->uid = (long)cred.uid;
		snprintf(s->peer, sizeof s->peer, "local uid=%ld", s->uid);
		return;
	}
	struct sockaddr_storage ss;
	int len = sizeof ss;
	char ip[64] = "?";
	int port = 0;
	s->uid = -1;
	if (uv_tcp_getpeername(&s->h.tcp, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET6) {
			uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		} else {
			uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		}
	}
	snprintf(s->peer, sizeof s->peer, "[%s]:%d", ip, port);
}

/* Live sessions of one uid (-1: every TCP client), this one included. */
static size_t sessions_of(const struct daemon *d, long uid)
{
	size_t n = 0;
	for (const struct session *s = d->sessions; s; s = s->next)
		n += s->uid == uid && s->state != S_CLOSING;
	return n;
}

void session_accept(struct daemon *d, uv_stream_t *server, bool is_unix)
{
	struct session *s = xcalloc(1, sizeof *s);
	s->d = d;
	s->is_unix = is_unix;
	if (is_unix)
		uv_pipe_init(d->loop, &s->h.pipe, 0);
	else
		uv_tcp_init(d->loop, &s->h.tcp);
	s->h.handle.data = s;
	uv_timer_init(d->loop, &s->idle);
	s->idle.data = s;
	s->open_handles = 2;
	s->next = d->sessions;
	if (s->next)
		s->next->prev = s;
	d->sessions = s;
	d->nsessions++;
	buf_init(&s->in);
	buf_init(&s->out);
	buf_init(&s->scratch);
	envelope_init(&s->env);
	if (uv_accept(server, &s->h.stream) < 0) {
		session_close(s);
		return;
	}
	if (!is_unix)
		uv_tcp_nodelay(&s->h.tcp, 1);
	peer_identity(s);
	if (s->is_unix && s->uid >= 0)
		start_lookup(s);
	log_debug("%s: connect", s->peer);
	if (d->nsessions > d->max_sessions || d->stopping) {
		reply(s, "421 4.3.2 %s Service not available, too many connections", d->hostname);
		flush_out(s);
		session_close(s);
		return;
	}
	if (sessions_of(d, s->uid) > d->conf->listen.max_sessions_per_user) {
		log_warn("%s: refused: more than %llu sessions of this user ([listen] max_sessions_per_user)",
			 s->peer, (unsigned long long)d->conf->listen.max_sessions_per_user);
		reply(s, "421 4.7.0 %s Error: too many connections from you", d->hostname);
		flush_out(s);
		session_close(s);
		return;
	}
	reply(s, "220 %s ESMTP outbox", d->hostname);
	idle_restart(s);
	process_input(s);
}

void sessions_shutdown(struct daemon *d, bool force)
{
	struct session *s, *next;
	for (s = d->sessions; s; s = next) {
		next = s->next;
		if (s->state == S_CMD || (force && s->state == S_DATA)) {
			reply(s, "421 4.3.2 %s Service shutting down", d->hostname);
			flush_out(s);
			session_close(s);
		}
	}
}
