/* The transaction engine (daemon/transfer.c) against a scripted upstream
 * (engine_fake.h): what it writes, what each recipient's result is, and
 * that every message comes back exactly once, for the replies of the
 * fault matrix.  Every scenario runs twice: with the replies in one read
 * and split at every octet; the engine must write the same and decide
 * the same. */
#include "unit.h"
#include "engine_fake.h"

#define PIPE (EXT_PIPELINING)
#define CHUNK (EXT_PIPELINING | EXT_CHUNKING)

static const char *const R1[] = { "a@x" };
static const char *const R2[] = { "a@x", "b@x" };

/* A small message k: "Subject: mK" and "body K". */
static void add_small(struct fake_source *src, const char *const *rcpt, size_t n)
{
	char body[64];
	int len = snprintf(body, sizeof body, "Subject: m%zu\r\n\r\nbody %zu\r\n", src->n, src->n);
	fake_add(src, "s@x", rcpt, n, body, (size_t)len);
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

struct scene {
	struct smtp_client s;
	struct transfer *t;
	struct fake_source src;
	struct transfer_result res;
};

static void scene_start(struct scene *sc, const char *script, size_t step, unsigned ext)
{
	memset(&sc->src, 0, sizeof sc->src);
	wire_start(&sc->s, script, strlen(script), step, ext);
	sc->t = transfer_new(&sc->s);
}

static void scene_end(struct scene *sc)
{
	for (size_t k = 0; k < sc->src.next; k++)
		assert_int_equal(sc->src.back[k], 1);	/* each handed back exactly once */
	fake_source_free(&sc->src);
	transfer_free(sc->t);
	smtp_client_free(&sc->s);
}

/* What was written, NUL-terminated (the tests' bodies are text). */
static const char *written(void)
{
	buf_addc(&wire.out, '\0');
	wire.out.len--;
	return wire.out.data;
}

/* 451 to every RCPT of several messages in one BDAT batch: each is
 * deferred with the 451 (the 554 to its BDAT does not bounce it), each
 * after the first starts with RSET. */
static void rcpt_451_batch(size_t step)
{
	struct scene sc;
	scene_start(&sc, "250 ok\r\n451 4.7.1 later\r\n451 4.7.1 later\r\n554 5.5.1 no valid recipients\r\n"
			 "250 reset\r\n250 ok\r\n451 4.7.1 later\r\n451 4.7.1 later\r\n554 5.5.1 no valid recipients\r\n"
			 "250 reset\r\n250 ok\r\n451 4.7.1 later\r\n451 4.7.1 later\r\n554 5.5.1 no valid recipients\r\n",
		    step, CHUNK);
	for (int k = 0; k < 3; k++)
		add_small(&sc.src, R2, 2);
	assert_true(fake_run(sc.t, &sc.src, true, &sc.res));
	assert_int_equal(sc.res.messages, 3);
	assert_int_equal(sc.res.batches, 1);
	assert_false(sc.res.session_ends);
	const char *w = written();
	assert_int_equal(count(w, "RSET\r\nMAIL FROM:<s@x>"), 2);
	assert_int_equal(count(w, "BDAT "), 3);
	for (int k = 0; k < 3; k++)
		for (int i = 0; i < 2; i++) {
			assert_int_equal(sc.src.state[k][i], OUT_DEFERRED);
			assert_string_equal(sc.src.why[k][i], "451 4.7.1 later");
		}
	assert_int_equal(wire.pos, wire.len);	/* every reply read */
	scene_end(&sc);
}

/* The same with DATA, one run per message (as the worker does): no
 * message octet is sent, and the next run begins with RSET. */
static void rcpt_451_data(size_t step)
{
	struct scene sc;
	scene_start(&sc, "250 ok\r\n451 4.7.1 later\r\n451 4.7.1 later\r\n554 5.5.1 no valid recipients\r\n"
			 "250 reset\r\n250 ok\r\n451 4.7.1 later\r\n451 4.7.1 later\r\n554 5.5.1 no valid recipients\r\n",
		    step, PIPE);
	add_small(&sc.src, R2, 2);
	add_small(&sc.src, R2, 2);
	while (fake_run(sc.t, &sc.src, false, &sc.res))
		assert_int_equal(sc.res.messages, 1);
	const char *w = written();
	assert_null(strstr(w, "body"));
	assert_null(strstr(w, "\r\n.\r\n"));
	assert_int_equal(count(w, "RSET\r\nMAIL FROM:<s@x>"), 1);
	for (int k = 0; k < 2; k++)
		assert_int_equal(sc.src.state[k][1], OUT_DEFERRED);
	scene_end(&sc);
}

/* DATA refused for a message whose envelope went behind the previous
 * ".": the first is sent, the refused one gets DATA's reply (451
 * deferred, 554 bounced) and none of its octets go; the next message
 * begins with RSET. */
static void data_refused(size_t step, const char *reply, enum outcome want)
{
	char script[512];
	snprintf(script, sizeof script,
		 "250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n250 ok\r\n250 ok\r\n%s\r\n"
		 "250 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n", reply);
	struct scene sc;
	scene_start(&sc, script, step, PIPE);
	for (int k = 0; k < 3; k++)
		add_small(&sc.src, R1, 1);
	sc.src.limit = 2;	/* m2 comes in the worker's next run */
	assert_true(fake_run(sc.t, &sc.src, false, &sc.res));
	assert_int_equal(sc.res.messages, 2);
	sc.src.limit = 0;
	assert_true(fake_run(sc.t, &sc.src, false, &sc.res));
	const char *w = written();
	assert_int_equal(sc.src.state[0][0], OUT_SENT);
	assert_int_equal(sc.src.state[1][0], want);
	assert_string_equal(sc.src.why[1][0], reply);
	assert_int_equal(sc.src.state[2][0], OUT_SENT);
	assert_non_null(strstr(w, "body 0"));
	assert_null(strstr(w, "body 1"));
	assert_non_null(strstr(w, "body 2"));
	assert_non_null(strstr(w, "DATA\r\nRSET\r\nMAIL FROM:<s@x>"));
	scene_end(&sc);
}

static void data_refused_451(size_t step)
{
	data_refused(step, "451 4.3.0 try later", OUT_DEFERRED);
}

static void data_refused_554(size_t step)
{
	data_refused(step, "554 5.7.1 rejected", OUT_BOUNCED);
}

/* A body over twice BODY_CHUNK goes as three BDATs; the first refused, the
 * message keeps that refusal (the LAST's 250 does not make it sent),
 * and the next message of the batch begins with RSET. */
static void bdat_refused_not_last(size_t step)
{
	struct scene sc;
	scene_start(&sc, "250 ok\r\n250 ok\r\n451 4.3.0 chunk refused\r\n250 odd\r\n250 odd but ok\r\n"
			 "250 reset\r\n250 ok\r\n250 ok\r\n250 queued\r\n",
		    step, CHUNK);
	size_t big = 2 * BODY_CHUNK + 40000;
	char *body = xmalloc(big);
	for (size_t i = 0; i < big; i++)
		body[i] = i % 72 == 70 ? '\r' : i % 72 == 71 ? '\n' : 'x';
	fake_add(&sc.src, "s@x", R1, 1, body, big);
	free(body);
	add_small(&sc.src, R1, 1);
	assert_true(fake_run(sc.t, &sc.src, true, &sc.res));
	const char *w = written();
	assert_int_equal(count(w, "BDAT "), 4);	/* m0: two of BODY_CHUNK and the LAST */
	assert_int_equal(count(w, " LAST\r\n"), 2);
	assert_int_equal(sc.src.state[0][0], OUT_DEFERRED);
	assert_string_equal(sc.src.why[0][0], "451 4.3.0 chunk refused");
	assert_int_equal(sc.src.state[1][0], OUT_SENT);
	assert_non_null(strstr(w, "RSET\r\nMAIL FROM:<s@x>"));
	scene_end(&sc);
}

/* 503 to our MAIL: our own sequence error breaks the session; every
 * message in hand is deferred, never bounced. */
static void mail_503(size_t step)
{
	struct scene sc;
	scene_start(&sc, "503 5.5.1 bad sequence\r\n250 ok\r\n554 5.5.1 no transaction\r\n", step, CHUNK);
	add_small(&sc.src, R2, 2);
	add_small(&sc.src, R1, 1);
	assert_true(fake_run(sc.t, &sc.src, true, &sc.res));
	assert_true(sc.res.session_ends);
	for (int k = 0; k < 2; k++) {
		assert_int_equal(sc.src.state[k][0], OUT_DEFERRED);
		assert_non_null(strstr(sc.src.why[k][0], "MAIL refused as a protocol error"));
	}
	scene_end(&sc);
	/* without PIPELINING nothing follows the refused MAIL */
	scene_start(&sc, "503 5.5.1 bad sequence\r\n", step, 0);
	add_small(&sc.src, R2, 2);
	assert_true(fake_run(sc.t, &sc.src, false, &sc.res));
	assert_string_equal(written(), "MAIL FROM:<s@x>\r\n");
	assert_int_equal(sc.src.state[0][1], OUT_DEFERRED);
	scene_end(&sc);
}

/* 421 to a RCPT of the second message, after the first was sent: the
 * first stays sent, the second is deferred, none of its octets go, the
 * session ends. */
static void rcpt_421(size_t step)
{
	struct scene sc;
	scene_start(&sc, "250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n250 ok\r\n421 4.4.2 closing\r\n", step, PIPE);
	add_small(&sc.src, R1, 1);
	add_small(&sc.src, R1, 1);
	assert_true(fake_run(sc.t, &sc.src, false, &sc.res));
	assert_true(sc.res.session_ends);
	assert_int_equal(sc.src.state[0][0], OUT_SENT);
	assert_int_equal(sc.src.state[1][0], OUT_DEFERRED);
	assert_null(strstr(written(), "body 1"));
	scene_end(&sc);
}

/* A provider's quota reply defers whatever its code and is reported
 * for the relay's hold. */
static void quota_reply(size_t step)
{
	struct scene sc;
	scene_start(&sc, "250 ok\r\n550 5.4.5 Daily user sending limit exceeded\r\n554 5.5.1 no valid recipients\r\n",
		    step, CHUNK);
	add_small(&sc.src, R1, 1);
	assert_true(fake_run(sc.t, &sc.src, true, &sc.res));
	assert_int_equal(sc.src.state[0][0], OUT_DEFERRED);
	assert_int_equal(sc.res.quota_hold, 3600);
	assert_string_equal(sc.res.quota_reply, "550 5.4.5 Daily user sending limit exceeded");
	scene_end(&sc);
}

/* A server that asks for the message though no recipient was taken
 * gets nothing more: a bare "." could deliver an empty message. */
static void data_354_without_rcpt(size_t step)
{
	struct scene sc;
	scene_start(&sc, "250 ok\r\n550 5.1.1 unknown\r\n354 go ahead\r\n", step, PIPE);
	add_small(&sc.src, R1, 1);
	assert_true(fake_run(sc.t, &sc.src, false, &sc.res));
	assert_true(sc.res.session_ends);
	assert_string_equal(written(), "MAIL FROM:<s@x>\r\nRCPT TO:<a@x>\r\nDATA\r\n");
	assert_int_equal(sc.src.state[0][0], OUT_BOUNCED);	/* its own 550 */
	scene_end(&sc);
}

/* ---- DSN upstream (RFC 3461) ---- */

static const char *const R3[] = { "a@x", "b@x", "c@x" };

/* A message asking for notices: RET, ENVID, and per recipient NOTIFY
 * and ORCPT (stored values, as the intake leaves them). */
static void add_dsn(struct fake_source *src, const char *envid, const char *orcpt)
{
	add_small(src, R3, 3);
	struct envelope *env = &src->msg[src->n - 1].env;
	env->ret = RET_HDRS;
	env->envid = envid ? xstrdup(envid) : NULL;
	env->rcpt[0].notify = NOTIFY_FAILURE | NOTIFY_SUCCESS;
	env->rcpt[0].orcpt = orcpt ? xstrdup(orcpt) : NULL;
	env->rcpt[1].notify = NOTIFY_NEVER;
	env->rcpt[2].notify = NOTIFY_DELAY | NOTIFY_FAILURE;
}

static const char DSN_OK[] = "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n";

/* The relay offers DSN: MAIL carries RET and ENVID, each RCPT its NOTIFY
 * (keywords in RFC 3461's order) and ORCPT, as stored. */
static void dsn_offered(size_t step)
{
	struct scene sc;
	scene_start(&sc, DSN_OK, step, PIPE | EXT_DSN);
	add_dsn(&sc.src, "xyz+2B1", "rfc822;a+2Bx@x");
	assert_true(fake_run(sc.t, &sc.src, false, &sc.res));
	const char *w = written();
	const char *want = "MAIL FROM:<s@x> RET=HDRS ENVID=xyz+2B1\r\n"
			   "RCPT TO:<a@x> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Bx@x\r\n"
			   "RCPT TO:<b@x> NOTIFY=NEVER\r\n"
			   "RCPT TO:<c@x> NOTIFY=FAILURE,DELAY\r\n"
			   "DATA\r\n";
	assert_memory_equal(w, want, strlen(want));
	for (int i = 0; i < 3; i++)
		assert_int_equal(sc.src.state[0][i], OUT_SENT);
	scene_end(&sc);
}

/* Without DSN in EHLO none of them goes (the report helper tells the
 * sender "relayed"). */
static void dsn_not_offered(size_t step)
{
	struct scene sc;
	scene_start(&sc, DSN_OK, step, PIPE);
	add_dsn(&sc.src, "xyz", "rfc822;a@x");
	assert_true(fake_run(sc.t, &sc.src, false, &sc.res));
	const char *want = "MAIL FROM:<s@x>\r\nRCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\nDATA\r\n";
	assert_memory_equal(written(), want, strlen(want));
	scene_end(&sc);
}

/* A stored value that is not xtext never reaches the wire: that
 * parameter is left out, the others go. */
static void dsn_bad_values(size_t step)
{
	static const char *const bad_envid[] = { "x y", "a=b", "a+2b", "a+", "\x7f", "" };
	static const char *const bad_orcpt[] = { "rfc822", ";a@x", "rfc822;a b", "rfc 822;a@x", "rfc822;a=b" };
	for (size_t k = 0; k < ARRAY_LEN(bad_envid); k++) {
		struct scene sc;
		scene_start(&sc, DSN_OK, step, PIPE | EXT_DSN);
		add_dsn(&sc.src, bad_envid[k], bad_orcpt[k % ARRAY_LEN(bad_orcpt)]);
		assert_true(fake_run(sc.t, &sc.src, false, &sc.res));
		const char *want = "MAIL FROM:<s@x> RET=HDRS\r\nRCPT TO:<a@x> NOTIFY=SUCCESS,FAILURE\r\n";
		assert_memory_equal(written(), want, strlen(want));
		scene_end(&sc);
	}
}

/* ---- recipients postponed with 452 (RFC 5321 4.5.3.1.10) ---- */

static const char *const R5[] = { "a@x", "b@x", "c@x", "d@x", "e@x" };

/* The replies to one transaction: MAIL taken, then per RCPT r[i]
 * ("250 ok" or a refusal), then DATA's 354 and the end's reply (with
 * BDAT: the LAST's reply; without PIPELINING no DATA when none taken). */
static void round_script(char *out, size_t n, bool chunked, bool pipelined, const char *const *r, size_t nr,
			 const char *end)
{
	bool taken = false;
	size_t len = strlen(out);
	len += (size_t)snprintf(out + len, n - len, "250 ok\r\n");
	for (size_t i = 0; i < nr; i++) {
		len += (size_t)snprintf(out + len, n - len, "%s\r\n", r[i]);
		taken |= r[i][0] == '2';
	}
	if (!chunked && (taken || pipelined))
		len += (size_t)snprintf(out + len, n - len, "%s", taken ? "354 go\r\n" : "554 5.5.1 no valid recipients\r\n");
	if (taken || chunked)
		snprintf(out + len, n - len, "%s\r\n", taken ? end : "554 5.5.1 no valid recipients");
}

#define OK "250 ok"
#define FULL "452 4.5.3 Too many recipients"

/* A relay that takes two recipients per message: the five go in three
 * transactions on the session at once, each recipient accepted once. */
static void postponed_rounds(size_t step, unsigned ext, bool chunked)
{
	char script[1024] = "";
	round_script(script, sizeof script, chunked, ext & EXT_PIPELINING, (const char *const[]){ OK, OK, FULL, FULL, FULL }, 5, "250 queued");
	round_script(script, sizeof script, chunked, ext & EXT_PIPELINING, (const char *const[]){ OK, OK, FULL }, 3, "250 queued");
	round_script(script, sizeof script, chunked, ext & EXT_PIPELINING, (const char *const[]){ OK }, 1, "250 queued");
	struct scene sc;
	scene_start(&sc, script, step, ext);
	add_small(&sc.src, R5, 5);
	assert_true(fake_run(sc.t, &sc.src, chunked, &sc.res));
	const char *w = written();
	assert_int_equal(sc.res.messages, 1);
	assert_false(sc.res.session_ends);
	assert_int_equal(count(w, "MAIL FROM:<s@x>"), 3);
	assert_int_equal(count(w, "RSET"), 0);
	assert_int_equal(count(w, "body 0"), 3);
	assert_int_equal(count(w, "RCPT TO:<a@x>"), 1);
	assert_int_equal(count(w, "RCPT TO:<b@x>"), 1);
	assert_int_equal(count(w, "RCPT TO:<c@x>"), 2);
	assert_int_equal(count(w, "RCPT TO:<d@x>"), 2);
	assert_int_equal(count(w, "RCPT TO:<e@x>"), 3);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(sc.src.state[0][i], OUT_SENT);
		assert_string_equal(sc.src.why[0][i], "250 queued");
	}
	assert_int_equal(wire.pos, wire.len);
	scene_end(&sc);
}

static void postponed_pipelined(size_t step)
{
	postponed_rounds(step, PIPE, false);
}

static void postponed_one_by_one(size_t step)
{
	postponed_rounds(step, 0, false);
}

static void postponed_chunked(size_t step)
{
	postponed_rounds(step, CHUNK, true);
}

/* A bare "452" (the text is optional, RFC 5321 4.2) after a reply with
 * an enhanced code is postponed as "452 4.5.3" is: judged by the reply
 * itself, not by what an earlier one left behind. */
static void postponed_bare_452(size_t step)
{
	char script[1024] = "250 2.1.0 ok\r\n250 2.1.5 ok\r\n452\r\n354 go\r\n250 2.0.0 queued\r\n";
	round_script(script, sizeof script, false, true, (const char *const[]){ "250 2.1.5 ok" }, 1, "250 queued");
	struct scene sc;
	scene_start(&sc, script, step, PIPE);
	add_small(&sc.src, R5, 2);
	assert_true(fake_run(sc.t, &sc.src, false, &sc.res));
	const char *w = written();
	assert_int_equal(count(w, "MAIL FROM:<s@x>"), 2);
	assert_int_equal(count(w, "RCPT TO:<b@x>"), 2);
	assert_int_equal(sc.src.state[0][0], OUT_SENT);
	assert_int_equal(sc.src.state[0][1], OUT_SENT);
	scene_end(&sc);
}

/* A transaction that accepts none of the postponed recipients (or whose
 * message is refused) ends the rounds: the rest are deferred with their
 * 452, and nothing loops. */
static void postponed_no_progress(size_t step)
{
	char script[1024] = "";
	round_script(script, sizeof script, false, true, (const char *const[]){ OK, FULL, FULL }, 3, "250 queued");
	round_script(script, sizeof script, false, true, (const char *const[]){ FULL, "550 5.1.1 unknown" }, 2, "");
	struct scene sc;
	scene_start(&sc, script, step, PIPE);
	add_small(&sc.src, R5, 3);
	assert_true(fake_run(sc.t, &sc.src, false, &sc.res));
	const char *w = written();
	assert_int_equal(count(w, "MAIL FROM:<s@x>"), 2);
	assert_int_equal(count(w, "body 0"), 1);
	assert_int_equal(sc.src.state[0][0], OUT_SENT);
	assert_int_equal(sc.src.state[0][1], OUT_DEFERRED);
	assert_string_equal(sc.src.why[0][1], FULL);
	assert_int_equal(sc.src.state[0][2], OUT_BOUNCED);
	assert_int_equal(wire.pos, wire.len);
	scene_end(&sc);
	/* the end of data refused: no second round */
	script[0] = '\0';
	round_script(script, sizeof script, false, true, (const char *const[]){ OK, FULL }, 2, "451 4.3.0 later");
	scene_start(&sc, script, step, PIPE);
	add_small(&sc.src, R2, 2);
	assert_true(fake_run(sc.t, &sc.src, false, &sc.res));
	assert_int_equal(count(written(), "MAIL FROM:<s@x>"), 1);
	assert_int_equal(sc.src.state[0][0], OUT_DEFERRED);
	assert_int_equal(sc.src.state[0][1], OUT_DEFERRED);
	assert_string_equal(sc.src.why[0][1], FULL);
	scene_end(&sc);
}

/* Another 4xx to RCPT (and a 452 that is not about the number of
 * recipients) stays deferred as before: one transaction. */
static void other_4xx_not_postponed(size_t step)
{
	char script[1024] = "";
	round_script(script, sizeof script, false, true,
		     (const char *const[]){ OK, "452 4.2.2 mailbox full", "451 4.7.1 later" }, 3, "250 queued");
	struct scene sc;
	scene_start(&sc, script, step, PIPE);
	add_small(&sc.src, R5, 3);
	assert_true(fake_run(sc.t, &sc.src, false, &sc.res));
	assert_int_equal(count(written(), "MAIL FROM:<s@x>"), 1);
	assert_int_equal(sc.src.state[0][1], OUT_DEFERRED);
	assert_string_equal(sc.src.why[0][1], "452 4.2.2 mailbox full");
	assert_int_equal(sc.src.state[0][2], OUT_DEFERRED);
	scene_end(&sc);
}

/* Each scenario whole and split at every octet, and the writes equal. */
static void both(void (*scenario)(size_t step))
{
	scenario(0);
	struct buf whole;
	buf_init(&whole);
	buf_add(&whole, wire.out.data, wire.out.len);
	scenario(1);
	assert_int_equal(whole.len, wire.out.len);
	assert_memory_equal(whole.data, wire.out.data, whole.len);
	buf_free(&whole);
}

#define BOTH(name) static void t_##name(void **state) { (void)state; both(name); }
BOTH(rcpt_451_batch)
BOTH(rcpt_451_data)
BOTH(data_refused_451)
BOTH(data_refused_554)
BOTH(bdat_refused_not_last)
BOTH(mail_503)
BOTH(rcpt_421)
BOTH(quota_reply)
BOTH(data_354_without_rcpt)
BOTH(dsn_offered)
BOTH(dsn_not_offered)
BOTH(dsn_bad_values)
BOTH(postponed_pipelined)
BOTH(postponed_bare_452)
BOTH(postponed_one_by_one)
BOTH(postponed_chunked)
BOTH(postponed_no_progress)
BOTH(other_4xx_not_postponed)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_rcpt_451_batch),	   cmocka_unit_test(t_rcpt_451_data),
		cmocka_unit_test(t_data_refused_451),	   cmocka_unit_test(t_data_refused_554),
		cmocka_unit_test(t_bdat_refused_not_last), cmocka_unit_test(t_mail_503),
		cmocka_unit_test(t_rcpt_421),		   cmocka_unit_test(t_quota_reply),
		cmocka_unit_test(t_data_354_without_rcpt), cmocka_unit_test(t_dsn_offered),
		cmocka_unit_test(t_dsn_not_offered),	   cmocka_unit_test(t_dsn_bad_values),
		cmocka_unit_test(t_postponed_pipelined),   cmocka_unit_test(t_postponed_one_by_one),
		cmocka_unit_test(t_postponed_chunked),	   cmocka_unit_test(t_postponed_no_progress),
		cmocka_unit_test(t_other_4xx_not_postponed), cmocka_unit_test(t_postponed_bare_452),
	};
	int rc = cmocka_run_group_tests_name("transfer", tests, NULL, NULL);
	buf_free(&wire.out);
	return rc;
}
