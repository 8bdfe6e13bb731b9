/* The DSN request's syntax (common/dsnparam.c) and its place in the queue
 * record (common/qrecord.c), fed hostile bytes.  The first byte picks
 * the parser; the rest is its input.  Invariants:
 *  - whatever is accepted (xtext, NOTIFY, RET, ENVID, ORCPT, a whole
 *    parameter, an envelope line's parameters) holds no control byte, no
 *    space and nothing over 0x7e, so no line of a queue file, log or SMTP
 *    command can be forged with it;
 *  - xtext decodes to printable ASCII, and that re-encodes to xtext that
 *    decodes to the same; NOTIFY formats to a text that parses back;
 *  - an accepted ENVID, ORCPT, NOTIFY and RET put into an envelope
 *    encode, decode to the same values, and encode again to the same
 *    bytes;
 *  - a record that decodes re-encodes to one that decodes the same, and
 *    encoding that is stable; status offsets point at status bytes;
 *  - nothing reads past the input (ASan: the input is copied to a buffer
 *    of exactly its length, NUL-terminated only where a string is due). */
#include "fuzz.h"
#include "../../common/dsnparam.h"

static void printable_nospace(const char *s)
{
	for (; *s; s++)
		CHECK(*s > ' ' && *s <= '~');
}

static void xtext_case(const char *p, size_t n)
{
	struct buf d, e, d2;
	buf_init(&d);
	buf_init(&e);
	buf_init(&d2);
	bool ok = xtext_valid(p, n);
	CHECK(ok == (xtext_decode(p, n, &d) == 0));
	if (ok) {
		for (size_t i = 0; i < d.len; i++)
			CHECK(d.data[i] >= ' ' && d.data[i] <= '~');
		for (size_t i = 0; i < n; i++)
			CHECK(p[i] > ' ' && p[i] <= '~');
		xtext_encode(d.data ? d.data : "", d.len, &e);
		CHECK(xtext_valid(e.data ? e.data : "", e.len));
		CHECK(xtext_decode(e.data ? e.data : "", e.len, &d2) == 0);
		CHECK(d2.len == d.len && (d.len == 0 || memcmp(d.data, d2.data, d.len) == 0));
	}
	buf_free(&d);
	buf_free(&e);
	buf_free(&d2);
}

static void notify_case(const char *s)
{
	char t[DSN_NOTIFY_TEXT_MAX];
	unsigned m = dsn_notify_parse(s);
	CHECK(m == 0 || dsn_notify_valid(m));
	if (m) {
		dsn_notify_format(m, t);
		CHECK(dsn_notify_parse(t) == m);
		CHECK(strcasecmp(t, s) == 0 || strchr(s, ','));	/* a list may be reordered */
	}
}

/* Accepted values into an envelope: encode, decode, encode again. */
static void record_case(enum dsn_ret ret, const char *envid, unsigned notify, const char *orcpt)
{
	struct envelope env, back;
	struct buf a, b;
	struct err e;
	size_t off;
	envelope_init(&env);
	env.sender = xstrdup("s@x.example");
	envelope_add_rcpt(&env, "r@x.example");
	env.ret = ret;
	env.envid = envid ? xstrdup(envid) : NULL;
	env.rcpt[0].notify = notify;
	env.rcpt[0].orcpt = orcpt ? xstrdup(orcpt) : NULL;
	buf_init(&a);
	buf_init(&b);
	CHECK(qrec_encode(&env, &a, &e) == 0);
	CHECK(qrec_decode(a.data, a.len, &back, &off, &e) == 0);
	CHECK(off == a.len && back.ret == ret && back.rcpt[0].notify == notify);
	CHECK(envid ? strcmp(back.envid, envid) == 0 : !back.envid);
	CHECK(orcpt ? strcmp(back.rcpt[0].orcpt, orcpt) == 0 : !back.rcpt[0].orcpt);
	CHECK(qrec_encode(&back, &b, &e) == 0);
	CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
	envelope_free(&back);
	envelope_free(&env);
	buf_free(&a);
	buf_free(&b);
}

static void param_case(const char *s)
{
	struct dsn_mail_req m = { .ret = RET_UNSET };
	struct dsn_rcpt_req r = { 0 };
	const char *why;
	if (dsn_mail_param(s, &m, &why) == DSN_TAKEN && m.envid)
		printable_nospace(m.envid);
	if (dsn_rcpt_param(s, &r, &why) == DSN_TAKEN && r.orcpt)
		printable_nospace(r.orcpt);
	record_case(m.ret, m.envid, r.notify, r.orcpt);
	dsn_mail_req_free(&m);
	dsn_rcpt_req_free(&r);
}

static void line_case(const char *s, bool rcpt)
{
	struct envelope env;
	const char *why;
	envelope_init(&env);
	envelope_add_rcpt(&env, "r@x.example");
	if (dsn_line_params(s, &env, rcpt, 0, &why) == 0) {
		if (env.envid)
			printable_nospace(env.envid);
		if (env.rcpt[0].orcpt)
			printable_nospace(env.rcpt[0].orcpt);
		CHECK(env.rcpt[0].notify == 0 || dsn_notify_valid(env.rcpt[0].notify));
	} else {
		CHECK(!env.envid && env.ret == RET_UNSET && !env.rcpt[0].orcpt && !env.rcpt[0].notify);
	}
	envelope_free(&env);
}

static void decode_case(const char *p, size_t n)
{
	struct envelope env, again;
	struct buf a, b;
	struct err e;
	size_t off, off2;
	if (qrec_decode(p, n, &env, &off, &e) < 0)
		return;
	CHECK(off <= n);
	if (env.envid)
		printable_nospace(env.envid);
	for (size_t i = 0; i < env.nrcpt; i++) {
		CHECK(env.rcpt[i].status_off >= 0 && (size_t)env.rcpt[i].status_off < off);
		CHECK(p[env.rcpt[i].status_off] == env.rcpt[i].status);
		if (env.rcpt[i].orcpt)
			printable_nospace(env.rcpt[i].orcpt);
	}
	buf_init(&a);
	buf_init(&b);
	CHECK(qrec_encode(&env, &a, &e) == 0);
	CHECK(qrec_decode(a.data, a.len, &again, &off2, &e) == 0);
	CHECK(off2 == a.len && again.nrcpt == env.nrcpt && again.ret == env.ret);
	CHECK(env.envid ? strcmp(again.envid, env.envid) == 0 : !again.envid);
	for (size_t i = 0; i < env.nrcpt; i++) {
		CHECK(again.rcpt[i].notify == env.rcpt[i].notify);
		CHECK(env.rcpt[i].orcpt ? strcmp(again.rcpt[i].orcpt, env.rcpt[i].orcpt) == 0
					: !again.rcpt[i].orcpt);
	}
	CHECK(qrec_encode(&again, &b, &e) == 0);
	CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
	envelope_free(&again);
	envelope_free(&env);
	buf_free(&a);
	buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 4096)
		return 0;
	size_t n = size - 1;
	char *raw = malloc(n ? n : 1);	/* exactly the input: no NUL after it */
	memcpy(raw, data + 1, n);
	char *str = malloc(n + 1);	/* the same as a string, cut at a NUL */
	memcpy(str, data + 1, n);
	str[n] = '\0';
	switch (data[0] % 6) {
	case 0: xtext_case(raw, n); break;
	case 1: notify_case(str); break;
	case 2: param_case(str); break;
	case 3: line_case(str, false); break;
	case 4: line_case(str, true); break;
	default: decode_case(raw, n); break;
	}
	free(raw);
	free(str);
	return 0;
}
