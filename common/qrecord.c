/*
 * qrecord.c - the record codec of the queue store (queue.h): the
 * envelope as a value and the text header of a queue file.
 *
 * Owns: the FILE FORMAT below, encoding (qrec_encode) and the checked
 * decoding (qrec_decode) of it; no I/O.
 *
 * FILE FORMAT: a text header, then the message exactly as it will be
 * relayed (CRLF line endings, not dot-stuffed):
 *
 *   outbox-queue 1\n
 *   arrival 1732700000.123456\n
 *   uid 1000\n                    (-1: submitted over TCP, user unknown)
 *   flags 8bitmime=0 smtputf8=0\n  fixed width: set at commit time
 *   from <a@example.org>\n        ("<>" for the null sender)
 *   rcpt Q <b@example.net>\n      one line per recipient; the status
 *   ...                           character Q (pending), D (delivered),
 *   end\n                         B (bouncing), R (relayed, notice due)
 *                                 or F (failed) is updated in place
 *   <message bytes>
 *
 * VERSION 2 is written only when the sender asked for a DSN (RFC 3461:
 * RET, ENVID, or a NOTIFY or ORCPT of some recipient), so plain mail
 * keeps the bytes above.  It adds, each optional and in this order:
 *
 *   outbox-queue 2\n
 *   ...                           (arrival, uid, flags, from as above)
 *   ret FULL\n                    or HDRS
 *   envid ab+2Bc\n                ENVID as the xtext it arrived as
 *   rcpt Q <b@example.net> notify=SUCCESS,FAILURE orcpt=rfc822;b@example.net\n
 *   ...                           NOTIFY canonical (NEVER, or SUCCESS,
 *   end\n                         FAILURE, DELAY in that order), ORCPT as
 *                                 it arrived; either may be absent
 *
 * The status byte keeps its place (the address ends at the first '>'
 * outside a quoted local part: "a>b"@x is an address, addr_path_end),
 * so the in-place update is the same.  The decoder reads both versions; a version 1 file with any of
 * these is corrupt.  Every value is checked again with dsnparam.h on
 * decode, so it is printable ASCII without space: no line can be forged.
 *
 * BOUNCES are queued in this order (daemon/attempt.c record_kept,
 * daemon/bounce.c), so that a crash anywhere neither loses a report nor
 * queues it twice: the file's name gets .B (fsync of the bucket), then
 * the failed recipients are marked B and those with a relayed notice
 * due R (fdatasync) -- a .B name over Q statuses only means the
 * recipients are tried again; a B or R with no .B name (a crash in the
 * opposite order, which outbox used before this comment said so) is given its mark when
 * the message is next loaded -- ; the report is committed under an ID that is a
 * function of the message's ID and tries (qid_bounce), so a second
 * commit of it finds the first (EEXIST); then B becomes F, R becomes D and the .B
 * goes.  A .B name found at start-up is finished the same way before
 * any report is handed to the workers (scheduler.c).
 *
 * INVARIANT: every address in the header passed addr_check(), so it has
 * no control characters and the line structure cannot be forged; a
 * header that decodes passed every check again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "dsnparam.h"
#include "qstore.h"

#define QFILE_MAGIC "outbox-queue 1\n"
#define QFILE_MAGIC_DSN "outbox-queue 2\n"
#define ARRIVAL_MAX 253402300799.0	/* the end of year 9999: a header that says later is corrupt */

void envelope_init(struct envelope *env)
{
	memset(env, 0, sizeof *env);
}

void envelope_free(struct envelope *env)
{
	for (size_t i = 0; i < env->nrcpt; i++) {
		free(env->rcpt[i].addr);
		free(env->rcpt[i].orcpt);
	}
	free(env->rcpt);
	free(env->sender);
	free(env->envid);
	envelope_init(env);
}

void envelope_add_rcpt(struct envelope *env, const char *addr)
{
	env->rcpt = xrealloc(env->rcpt, (env->nrcpt + 1) * sizeof *env->rcpt);
	env->rcpt[env->nrcpt] = (struct rcpt){ .addr = xstrdup(addr), .status = RCPT_PENDING,
						.status_off = -1 };
	env->nrcpt++;
}

size_t envelope_pending(const struct envelope *env)
{
	size_t n = 0;
	for (size_t i = 0; i < env->nrcpt; i++)
		n += env->rcpt[i].status == RCPT_PENDING;
	return n;
}

/* The flags line has a fixed width so that commit can rewrite it in
 * place once the message body has been seen. */
#define FLAGS_FMT "flags 8bitmime=%c smtputf8=%c\n"

void qrec_encode_flags(unsigned flags, struct buf *out)
{
	buf_printf(out, FLAGS_FMT, flags & ENV_8BITMIME ? '1' : '0',
		   flags & ENV_SMTPUTF8 ? '1' : '0');
}

bool qrec_status_valid(char c)
{
	return c == RCPT_PENDING || c == RCPT_SENT || c == RCPT_FAILED || c == RCPT_BOUNCING
	       || c == RCPT_RELAYED;
}

/* Did the sender ask for anything of RFC 3461 (then version 2)? */
static bool wants_dsn(const struct envelope *env)
{
	if (env->ret != RET_UNSET || env->envid)
		return true;
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].notify || env->rcpt[i].orcpt)
			return true;
	return false;
}

static int encode_dsn_mail(const struct envelope *env, struct buf *out, struct err *e)
{
	if (env->ret != RET_UNSET && env->ret != RET_FULL && env->ret != RET_HDRS)
		return err_set(e, "bad RET");
	if (env->envid && !dsn_envid_valid(env->envid))
		return err_set(e, "bad ENVID");
	if (env->ret != RET_UNSET)
		buf_printf(out, "ret %s\n", dsn_ret_name(env->ret));
	if (env->envid)
		buf_printf(out, "envid %s\n", env->envid);
	return 0;
}

/* " notify=... orcpt=..." of one recipient. */
static int encode_dsn_rcpt(const struct rcpt *r, struct buf *out)
{
	char n[DSN_NOTIFY_TEXT_MAX];
	if ((r->notify && !dsn_notify_valid(r->notify)) || (r->orcpt && !dsn_orcpt_valid(r->orcpt)))
		return -1;
	if (r->notify)
		buf_printf(out, " notify=%s", dsn_notify_format(r->notify, n));
	if (r->orcpt)
		buf_printf(out, " orcpt=%s", r->orcpt);
	return 0;
}

int qrec_encode(const struct envelope *env, struct buf *out, struct err *e)
{
	if (!env->sender || (*env->sender && addr_check(env->sender, e) < 0))
		return err_set(e, "bad sender");
	if (env->nrcpt == 0)
		return err_set(e, "no recipients");
	bool dsn = wants_dsn(env);
	buf_adds(out, dsn ? QFILE_MAGIC_DSN : QFILE_MAGIC);
	buf_printf(out, "arrival %.6f\nuid %ld\n", env->arrival, env->uid);
	qrec_encode_flags(env->flags, out);
	buf_printf(out, "from <%s>\n", env->sender);
	if (dsn && encode_dsn_mail(env, out, e) < 0)
		return -1;
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct rcpt *r = &env->rcpt[i];
		if (addr_check(r->addr, e) < 0 || !qrec_status_valid(r->status))
			return err_set(e, "bad recipient %zu", i);
		buf_printf(out, "rcpt %c <%s>", r->status, r->addr);
		if (dsn && encode_dsn_rcpt(r, out) < 0)
			return err_set(e, "bad DSN request of recipient %zu", i);
		buf_addc(out, '\n');
	}
	buf_adds(out, "end\n");
	return 0;
}

/* Next header line [p, nl); returns NULL at the end of input. */
static const char *next_line(const char *p, const char *end, size_t *len)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	if (!nl)
		return NULL;
	*len = (size_t)(nl - p);
	return nl + 1;
}

/* "<addr>" of exactly n octets into a fresh string; NULL if malformed. */
static char *decode_addr(const char *p, size_t n, bool allow_null)
{
	if (n < 2 || p[0] != '<' || p[n - 1] != '>' || n - 2 > ADDR_MAX)
		return NULL;
	char *a = xstrndup(p + 1, n - 2);
	if (strlen(a) != n - 2 || (*a ? addr_check(a, NULL) < 0 : !allow_null)) {
		free(a);
		return NULL;
	}
	return a;
}

static int decode_flags(const char *p, size_t n, unsigned *flags)
{
	static const char pat[] = "8bitmime=? smtputf8=?";
	if (n != sizeof pat - 1)
		return -1;
	*flags = 0;
	for (size_t i = 0; i < n; i++) {
		if (pat[i] != '?') {
			if (p[i] != pat[i])
				return -1;
		} else if (p[i] == '1') {
			*flags |= i < 12 ? ENV_8BITMIME : ENV_SMTPUTF8;
		} else if (p[i] != '0') {
			return -1;
		}
	}
	return 0;
}

/* Parse "KEY rest" with rest of form checked by the caller. */
static bool line_key(const char *line, size_t len, const char *key, const char **rest, size_t *rlen)
{
	size_t k = strlen(key);
	if (len <= k || memcmp(line, key, k) != 0 || line[k] != ' ')
		return false;
	*rest = line + k + 1;
	*rlen = len - k - 1;
	return true;
}

static int decode_number(const char *p, size_t n, double *out)
{
	char tmp[40], *end;
	if (n == 0 || n >= sizeof tmp || strspn(p, "-0123456789.") < n)
		return -1;
	memcpy(tmp, p, n);
	tmp[n] = '\0';
	errno = 0;
	*out = strtod(tmp, &end);
	return (*end || errno) ? -1 : 0;
}

/* A token "key=value" of exactly n octets: its value (a fresh string) or
 * NULL. */
static char *token_value(const char *p, size_t n, const char *key)
{
	size_t k = strlen(key);
	if (n <= k || memcmp(p, key, k) != 0)
		return NULL;
	char *v = xstrndup(p + k, n - k);
	if (strlen(v) != n - k) {	/* a NUL */
		free(v);
		return NULL;
	}
	return v;
}

/* What follows "<addr>" on a version 2 rcpt line: "", " notify=LIST",
 * " orcpt=VALUE" or both in that order, each checked (NOTIFY in its
 * canonical form, as the encoder writes it). */
static int decode_dsn_rcpt(const char *p, size_t n, struct rcpt *r)
{
	const char *tok[2];
	size_t tl[2], nt = 0, i = 0;
	char *v, canon[DSN_NOTIFY_TEXT_MAX];
	while (n) {	/* at most two tokens, each after one space */
		if (p[0] != ' ' || nt == 2)
			return -1;
		const char *sp = memchr(p + 1, ' ', n - 1);
		tl[nt] = sp ? (size_t)(sp - p - 1) : n - 1;
		tok[nt] = p + 1;
		p += tl[nt] + 1;
		n -= tl[nt++] + 1;
	}
	if (i < nt && (v = token_value(tok[i], tl[i], "notify="))) {
		r->notify = dsn_notify_parse(v);
		bool ok = r->notify && strcmp(v, dsn_notify_format(r->notify, canon)) == 0;
		free(v);
		if (!ok)
			return -1;
		i++;
	}
	if (i < nt && (v = token_value(tok[i], tl[i], "orcpt="))) {
		r->orcpt = v;	/* freed with the envelope */
		if (!dsn_orcpt_valid(v))
			return -1;
		i++;
	}
	return i == nt ? 0 : -1;
}

/* "rcpt S <addr>[ DSN]" after "rcpt ": a recipient added to env. */
static int decode_rcpt(const char *rest, size_t rl, bool dsn, const char *start,
		       struct envelope *env)
{
	if (rl < 4 || !qrec_status_valid(rest[0]) || rest[1] != ' ' || rest[2] != '<')
		return -1;
	const char *gt = addr_path_end(rest + 3, rl - 3);	/* ("a>b"@x is an address) */
	size_t alen = gt ? (size_t)(gt - rest - 2) + 1 : 0;
	char *a = gt ? decode_addr(rest + 2, alen, false) : NULL;
	if (!a)
		return -1;
	envelope_add_rcpt(env, a);
	free(a);
	struct rcpt *r = &env->rcpt[env->nrcpt - 1];
	r->status = rest[0];
	r->status_off = rest - start;
	size_t tail = rl - 2 - alen;
	return tail == 0 || (dsn && decode_dsn_rcpt(gt + 1, tail, r) == 0) ? 0 : -1;
}

/* The optional "ret" and "envid" lines of version 2: line l is one of
 * them (true, taken; *bad when malformed) or not. */
static bool decode_dsn_mail(const char *line, size_t l, struct envelope *env, bool *bad)
{
	const char *rest;
	size_t rl;
	if (env->ret == RET_UNSET && !env->envid && line_key(line, l, "ret", &rest, &rl)) {
		env->ret = rl == 4 && memcmp(rest, "FULL", 4) == 0 ? RET_FULL
			: rl == 4 && memcmp(rest, "HDRS", 4) == 0 ? RET_HDRS : RET_UNSET;
		*bad = env->ret == RET_UNSET;
		return true;
	}
	if (!env->envid && line_key(line, l, "envid", &rest, &rl)) {
		env->envid = xstrndup(rest, rl);
		*bad = strlen(env->envid) != rl || !dsn_envid_valid(env->envid);
		return true;
	}
	return false;
}

int qrec_decode(const char *p, size_t len, struct envelope *env, size_t *body_off, struct err *e)
{
	const char *start = p, *end = p + len, *line, *rest;
	size_t l, rl;
	double num;
	bool dsn, bad = false;
	envelope_init(env);
	size_t mlen = strlen(QFILE_MAGIC);
	if (len >= mlen && memcmp(p, QFILE_MAGIC, mlen) == 0)
		dsn = false;
	else if (len >= mlen && memcmp(p, QFILE_MAGIC_DSN, mlen) == 0)
		dsn = true;
	else
		return err_set(e, "not an outbox queue file (bad magic)");
	p += mlen;
#define NEXT() do { line = p; if (!(p = next_line(p, end, &l))) goto truncated; } while (0)
	NEXT();
	if (!line_key(line, l, "arrival", &rest, &rl) || decode_number(rest, rl, &num) < 0 || num < 0
	    || num > ARRIVAL_MAX)
		goto bad;
	env->arrival = num;
	NEXT();
	if (!line_key(line, l, "uid", &rest, &rl) || decode_number(rest, rl, &num) < 0
	    || num < -1 || num > 4294967295.0 || num != (double)(long)num)
		goto bad;
	env->uid = (long)num;
	NEXT();
	if (!line_key(line, l, "flags", &rest, &rl) || decode_flags(rest, rl, &env->flags) < 0)
		goto bad;
	env->flags_off = line - start;
	NEXT();
	if (!line_key(line, l, "from", &rest, &rl) || !(env->sender = decode_addr(rest, rl, true)))
		goto bad;
	NEXT();
	while (dsn && decode_dsn_mail(line, l, env, &bad)) {
		if (bad)
			goto bad;
		NEXT();
	}
	for (;;) {
		if (l == 3 && memcmp(line, "end", 3) == 0)
			break;
		if (!line_key(line, l, "rcpt", &rest, &rl) || decode_rcpt(rest, rl, dsn, start, env) < 0)
			goto bad;
		NEXT();
	}
#undef NEXT
	if (env->nrcpt == 0)
		goto bad;
	*body_off = (size_t)(p - start);
	return 0;
truncated:
	envelope_free(env);
	return err_set(e, "queue file header is truncated");
bad:
	envelope_free(env);
	return err_set(e, "malformed queue file header near offset %zu", (size_t)(line - start));
}
