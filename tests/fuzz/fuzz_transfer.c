/* The transaction engine (daemon/transfer.c) fed hostile reply streams,
 * over the real SMTP client on a scripted connection
 * (tests/unit/engine_fake.h).
 *
 * Input: one octet of options (bit 0: BDAT, else DATA; bit 1:
 * PIPELINING; bits 2-3: messages - 1; bits 4-5: recipients - 1 of
 * each; bit 6: replies split at every octet), then the replies.
 *
 * A model server reads what the engine wrote, pairing each command with
 * the next reply as the engine does, and keeps the worst a server may
 * do: a MAIL taken does not forget recipients taken before (only RSET
 * or the end of data does; it starts new data), a refused BDAT forgets
 * nothing.  RSET is
 * taken to reset whatever it answers: RFC 5321 4.1.1.5 has no reply but
 * 250 to it, and the engine leaves a server that refuses it; behind a
 * pipelined BDAT batch such a server could still deliver a later
 * message to an earlier one's recipient (the engine cannot unsend what
 * it pipelined), which this harness does not hold against it.
 * Invariants:
 *  - every message handed out comes back exactly once;
 *  - what the server takes as a message is one of ours, whole (never
 *    empty), and goes to none but its own recipients;
 *  - a recipient the engine calls sent was given that message, once
 *    (also across the transactions of recipients postponed with 452).
 */
#include "fuzz.h"
#include "../unit/engine_fake.h"

#define MSGS 4
#define RCPTS 4

static struct {
	char body[MSGS][64];
	size_t blen[MSGS];
	bool got[MSGS][RCPTS];	/* the server delivered message k to recipient i */
	size_t nmsg, nrcpt;
} m;

/* The reply beginning at *pos of the script, as the client cuts it; its
 * code, or -1 when there is none. */
static int next_reply(const uint8_t *p, size_t len, size_t *pos)
{
	size_t at = *pos;
	while (at < len) {
		const uint8_t *nl = memchr(p + at, '\n', len - at);
		if (!nl)
			return -1;
		size_t start = at;
		at = (size_t)(nl - p) + 1;
		if (at - start < 5 || p[start + 3] != '-') {
			*pos = at;
			if (at - start < 4 || p[start] < '2' || p[start] > '5' || p[start + 1] < '0' || p[start + 1] > '9'
			    || p[start + 2] < '0' || p[start + 2] > '9')
				return -1;
			return (p[start] - '0') * 100 + (p[start + 1] - '0') * 10 + (p[start + 2] - '0');
		}
	}
	return -1;
}

/* Which of our messages a delivered body is (-1: none). */
static int which(const char *b, size_t n)
{
	for (size_t k = 0; k < m.nmsg; k++)
		if (n == m.blen[k] && memcmp(b, m.body[k], n) == 0)
			return (int)k;
	return -1;
}

/* The server delivers body b to the recipients taken. */
static void deliver(const char *b, size_t n, bool taken[MSGS][RCPTS])
{
	int k = which(b, n);
	CHECK(n > 0);
	CHECK(k >= 0);	/* one of ours, whole */
	for (size_t j = 0; j < m.nmsg; j++)
		for (size_t i = 0; i < m.nrcpt; i++)
			if (taken[j][i]) {
				CHECK(j == (size_t)k);	/* to its own recipients only */
				CHECK(!m.got[k][i]);	/* once: a recipient taken is never sent again */
				m.got[k][i] = true;
			}
}

/* Recipients of one message at most are taken. */
static void one_owner(bool taken[MSGS][RCPTS])
{
	int owner = -1;
	for (size_t j = 0; j < m.nmsg; j++)
		for (size_t i = 0; i < m.nrcpt; i++)
			if (taken[j][i]) {
				CHECK(owner < 0 || owner == (int)j);
				owner = (int)j;
			}
}

/* The line at *at of what was written (without CRLF), advancing *at. */
static size_t line(const char *w, size_t len, size_t *at, char *out, size_t cap)
{
	const char *nl = memmem(w + *at, len - *at, "\r\n", 2);
	size_t n = nl ? (size_t)(nl - (w + *at)) : len - *at;
	snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), w + *at);
	*at += n + (nl ? 2 : 0);
	return n;
}

static void model(const uint8_t *script, size_t slen)
{
	const char *w = wire.out.data;
	size_t len = wire.out.len, at = 0, rpos = 0;
	bool taken[MSGS][RCPTS] = { { false } }, bdat_refused = false;
	struct buf body;
	char cmd[256];
	buf_init(&body);
	while (at < len) {
		line(w, len, &at, cmd, sizeof cmd);
		size_t chunk = 0;
		bool last = false, is_bdat = sscanf(cmd, "BDAT %zu", &chunk) == 1;
		if (is_bdat) {	/* its octets follow at once */
			last = strstr(cmd, " LAST") != NULL;
			CHECK(chunk <= len - at);
			buf_add(&body, w + at, chunk);
			at += chunk;
		}
		int code = next_reply(script, slen, &rpos);
		if (code < 0)
			break;	/* the server said no more: nothing after counts */
		bool ok = code / 100 == 2;
		if (strcmp(cmd, "RSET") == 0) {	/* it resets, whatever it answers (below) */
			memset(taken, 0, sizeof taken);
			buf_reset(&body);
			bdat_refused = false;
		} else if (strncmp(cmd, "MAIL FROM:", 10) == 0 && ok) {
			/* a new transaction's data: a BDAT refused before is of the
			 * old one (recipients it took stay, the worst a server does) */
			buf_reset(&body);
			bdat_refused = false;
		} else if (strncmp(cmd, "RCPT TO:<r", 10) == 0 && ok) {
			unsigned k, i;
			CHECK(sscanf(cmd + 10, "%u.%u@", &k, &i) == 2 && k < m.nmsg && i < m.nrcpt);
			taken[k][i] = true;
		} else if (strcmp(cmd, "DATA") == 0 && code == 354) {
			const char *end = memmem(w + at, len - at, "\r\n.\r\n", 5);
			if (!end)
				break;	/* the engine stopped mid-message: never delivered */
			buf_reset(&body);
			for (const char *p = w + at; p < end + 2; p++)	/* un-stuffed */
				if (!(*p == '.' && (p == w + at || p[-1] == '\n')))
					buf_addc(&body, *p);
			at = (size_t)(end - w) + 5;
			code = next_reply(script, slen, &rpos);	/* the reply to "." */
			if (code < 0)
				break;
			if (code / 100 == 2)
				deliver(body.data, body.len, taken);
			memset(taken, 0, sizeof taken);	/* any reply ends the transaction */
			buf_reset(&body);
		} else if (is_bdat && !ok) {
			bdat_refused = true;
		} else if (is_bdat && last) {
			if (!bdat_refused)
				deliver(body.data, body.len, taken);
			else	/* it may deliver what it kept: still to one message's recipients */
				one_owner(taken);
			memset(taken, 0, sizeof taken);
			buf_reset(&body);
			bdat_refused = false;
		}
	}
	buf_free(&body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t o = data[0];
	bool chunked = o & 1;
	unsigned ext = (o & 2 ? EXT_PIPELINING : 0) | (chunked ? EXT_PIPELINING | EXT_CHUNKING : 0);
	m.nmsg = 1 + ((o >> 2) & 3);
	m.nrcpt = 1 + ((o >> 4) & 3);
	memset(m.got, 0, sizeof m.got);
	struct smtp_client s;
	struct fake_source src;
	struct transfer_result res;
	memset(&src, 0, sizeof src);
	wire_start(&s, (const char *)data + 1, size - 1, o & 64 ? 1 : 0, ext);
	for (size_t k = 0; k < m.nmsg; k++) {
		char rcpt[RCPTS][32];
		const char *rp[RCPTS];
		for (size_t i = 0; i < m.nrcpt; i++) {
			snprintf(rcpt[i], sizeof rcpt[i], "r%zu.%zu@x", k, i);
			rp[i] = rcpt[i];
		}
		int n = snprintf(m.body[k], sizeof m.body[k], "Subject: m%zu\r\n\r\n.body %zu\r\n", k, k);
		m.blen[k] = (size_t)n;
		fake_add(&src, "s@x", rp, m.nrcpt, m.body[k], m.blen[k]);
	}
	struct transfer *t = transfer_new(&s);
	while (!src.next || (!res.session_ends && src.next < src.n))	/* as the worker: run after run */
		if (!fake_run(t, &src, chunked, &res))
			break;
	for (size_t k = 0; k < src.n; k++)
		CHECK(src.back[k] == (k < src.next ? 1u : 0u));
	model(data + 1, size - 1);
	for (size_t k = 0; k < src.next; k++)
		for (size_t i = 0; i < m.nrcpt; i++)
			if (src.state[k][i] == OUT_SENT)
				CHECK(m.got[k][i]);
	transfer_free(t);
	smtp_client_free(&s);
	fake_source_free(&src);
	return 0;
}
