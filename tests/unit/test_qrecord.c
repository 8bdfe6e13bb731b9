/* The queue record (common/qrecord.c): the round trip, what the encoder
 * refuses, malformed headers; and its DSN fields (VERSION 2): plain mail
 * keeps version 1's bytes, every combination of RET, ENVID, NOTIFY and
 * ORCPT round-trips with the status byte still updated in place, the
 * encoder refuses what would not decode, and forged version 2 headers
 * are refused.  (test_queue.c has the store on disk.) */
#include "unit.h"
#include "../../common/dsnparam.h"
#include "../../common/queue.h"
#include "queue_env.h"

static void round_trip(void **state)
{
	(void)state;
	struct envelope env, back;
	struct buf b;
	struct err e;
	size_t off;
	make_env(&env);
	buf_init(&b);
	assert_int_equal(qrec_encode(&env, &b, &e), 0);
	buf_adds(&b, "Subject: x\r\n\r\nbody\r\n");
	assert_int_equal(qrec_decode(b.data, b.len, &back, &off, &e), 0);
	assert_string_equal(b.data + off, "Subject: x\r\n\r\nbody\r\n");
	assert_true(back.arrival > 1732700000.4 && back.arrival < 1732700000.6);
	assert_int_equal(back.uid, 1000);
	assert_int_equal(back.flags, ENV_8BITMIME);
	assert_string_equal(back.sender, "a@example.org");
	assert_int_equal(back.nrcpt, 2);
	assert_string_equal(back.rcpt[1].addr, "\"c d\"@example.net");
	assert_int_equal(back.rcpt[0].status, RCPT_PENDING);
	assert_int_equal(b.data[back.rcpt[1].status_off], 'Q');
	assert_int_equal(envelope_pending(&back), 2);
	/* status byte updated in place decodes as such */
	b.data[back.rcpt[0].status_off] = RCPT_SENT;
	envelope_free(&back);
	assert_int_equal(qrec_decode(b.data, b.len, &back, &off, &e), 0);
	assert_int_equal(back.rcpt[0].status, RCPT_SENT);
	assert_int_equal(envelope_pending(&back), 1);
	envelope_free(&back);
	/* null sender */
	free(env.sender);
	env.sender = strdup("");
	buf_reset(&b);
	assert_int_equal(qrec_encode(&env, &b, &e), 0);
	assert_int_equal(qrec_decode(b.data, b.len, &back, &off, &e), 0);
	assert_string_equal(back.sender, "");
	envelope_free(&back);
	envelope_free(&env);
	buf_free(&b);
}

static void encode_refuses_bad_input(void **state)
{
	(void)state;
	struct envelope env;
	struct buf b;
	struct err e;
	buf_init(&b);
	make_env(&env);
	free(env.rcpt[0].addr);
	env.rcpt[0].addr = strdup("x@y.example>\nrcpt Q <evil@example.org");
	assert_int_equal(qrec_encode(&env, &b, &e), -1);
	envelope_free(&env);
	envelope_init(&env);
	env.sender = strdup("a@example.org");
	assert_int_equal(qrec_encode(&env, &b, &e), -1);	/* no recipients */
	envelope_free(&env);
	buf_free(&b);
}

static void malformed(void **state)
{
	(void)state;
	const char *good = "outbox-queue 1\narrival 1.5\nuid 0\nflags 8bitmime=0 smtputf8=1\n"
			   "from <a@b.example>\nrcpt Q <c@d.example>\nend\nbody";
	struct envelope env;
	struct err e;
	size_t off;
	assert_int_equal(qrec_decode(good, strlen(good), &env, &off, &e), 0);
	assert_int_equal(env.flags, ENV_SMTPUTF8);
	envelope_free(&env);
	const char *bad[] = {
		"",
		"outbox-queue 2\n",
		"outbox-queue 1\narrival 1.5\n",	/* truncated */
		"outbox-queue 1\narrival x\nuid 0\nflags 8bitmime=0 smtputf8=0\nfrom <>\nrcpt Q <c@d.example>\nend\n",
		/* found by fuzz_queue_file: decoded, but could not be written back */
		"outbox-queue 1\narrival 16666666666666666666666666666666666666673456\nuid 0\n"
		"flags 8bitmime=0 smtputf8=0\nfrom <>\nrcpt Q <c@d.example>\nend\n",
		"outbox-queue 1\narrival 1\nuid -3\nflags 8bitmime=0 smtputf8=0\nfrom <>\nrcpt Q <c@d.example>\nend\n",
		"outbox-queue 1\narrival 1\nuid 0\nflags 8bitmime=2 smtputf8=0\nfrom <>\nrcpt Q <c@d.example>\nend\n",
		"outbox-queue 1\narrival 1\nuid 0\nflags -\nfrom <>\nrcpt Q <c@d.example>\nend\n",
		"outbox-queue 1\narrival 1\nuid 0\nflags 8bitmime=0 smtputf8=0\nfrom a@b\nrcpt Q <c@d.example>\nend\n",
		"outbox-queue 1\narrival 1\nuid 0\nflags 8bitmime=0 smtputf8=0\nfrom <>\nrcpt X <c@d.example>\nend\n",
		"outbox-queue 1\narrival 1\nuid 0\nflags 8bitmime=0 smtputf8=0\nfrom <>\nrcpt Q <>\nend\n",
		"outbox-queue 1\narrival 1\nuid 0\nflags 8bitmime=0 smtputf8=0\nfrom <>\nend\n",	/* no rcpt */
		"outbox-queue 1\narrival 1\nuid 0\nflags 8bitmime=0 smtputf8=0\nfrom <>\nrcpt Q <c@d.example>\n",
		"outbox-queue 1\narrival 1\nuid 0\nflags 8bitmime=0 smtputf8=0\nfrom <>\nrcpt Q <bad addr@x>\nend\n",
		"outbox-queue 1\narrival 1\nuid 0\nflags 8bitmime=0 smtputf8=0\nfrom <>\nbogus\nend\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (qrec_decode(bad[i], strlen(bad[i]), &env, &off, &e) == 0)
			fail_msg("decoded malformed header #%zu", i);
	/* an embedded NUL in an address */
	char nul[] = "outbox-queue 1\narrival 1\nuid 0\nflags 8bitmime=0 smtputf8=0\nfrom <>\nrcpt Q <c\0@d.example>\nend\n";
	assert_int_equal(qrec_decode(nul, sizeof nul - 1, &env, &off, &e), -1);
}

/* A quoted local part may hold '>' ("a>b"@x is an address, RFC 5321
 * 4.1.2): the record keeps it, in version 1 and with DSN fields after
 * it, its status byte still in place (found by review: the decoder
 * cut the path at the first '>' and the file went to corrupt/). */
static void quoted_gt(void **state)
{
	(void)state;
	for (int dsn = 0; dsn < 2; dsn++) {
		struct envelope env, back;
		struct buf b;
		struct err e;
		size_t off;
		make_env(&env);
		free(env.sender);
		env.sender = strdup("\"s>t\"@example.org");
		envelope_add_rcpt(&env, "\"a>b\\\">\"@x.example");
		if (dsn) {
			env.rcpt[2].notify = NOTIFY_SUCCESS;
			env.rcpt[2].orcpt = strdup("rfc822;a+3Eb@x.example");
		}
		buf_init(&b);
		assert_int_equal(qrec_encode(&env, &b, &e), 0);
		buf_adds(&b, "body");
		assert_int_equal(qrec_decode(b.data, b.len, &back, &off, &e), 0);
		assert_string_equal(back.sender, "\"s>t\"@example.org");
		assert_int_equal(back.nrcpt, 3);
		assert_string_equal(back.rcpt[2].addr, "\"a>b\\\">\"@x.example");
		assert_int_equal(back.rcpt[2].notify, dsn ? NOTIFY_SUCCESS : 0);
		assert_int_equal(b.data[back.rcpt[2].status_off], 'Q');
		b.data[back.rcpt[2].status_off] = RCPT_SENT;
		envelope_free(&back);
		assert_int_equal(qrec_decode(b.data, b.len, &back, &off, &e), 0);
		assert_int_equal(back.rcpt[2].status, RCPT_SENT);
		envelope_free(&back);
		envelope_free(&env);
		buf_free(&b);
	}
}

/* The bytes today's (version 1) writer made for make_env(): plain mail
 * keeps them, and a file of them still decodes after the upgrade. */
static const char v1_bytes[] = "outbox-queue 1\narrival 1732700000.500000\nuid 1000\n"
			       "flags 8bitmime=1 smtputf8=0\nfrom <a@example.org>\n"
			       "rcpt Q <b@example.net>\nrcpt D <\"c d\"@example.net>\nend\nbody";

static void version1_unchanged(void **state)
{
	(void)state;
	struct envelope env, back;
	struct buf b;
	struct err e;
	size_t off;
	make_env(&env);
	env.rcpt[1].status = RCPT_SENT;
	buf_init(&b);
	assert_int_equal(qrec_encode(&env, &b, &e), 0);
	buf_adds(&b, "body");
	assert_string_equal(b.data, v1_bytes);	/* no DSN asked: the old bytes */
	assert_int_equal(qrec_decode(v1_bytes, sizeof v1_bytes - 1, &back, &off, &e), 0);
	assert_string_equal(v1_bytes + off, "body");
	assert_int_equal(back.nrcpt, 2);
	assert_int_equal(back.rcpt[1].status, RCPT_SENT);
	assert_int_equal(v1_bytes[back.rcpt[0].status_off], 'Q');
	assert_int_equal(back.ret, RET_UNSET);
	assert_null(back.envid);
	assert_int_equal(back.rcpt[0].notify, 0);
	assert_null(back.rcpt[0].orcpt);
	envelope_free(&back);
	envelope_free(&env);
	buf_free(&b);
}

/* Every combination of RET, ENVID, NOTIFY and ORCPT goes into version
 * 2 and comes back the same; the status byte is still updated in place. */
static void dsn_round_trip(void **state)
{
	(void)state;
	static const enum dsn_ret rets[] = { RET_UNSET, RET_FULL, RET_HDRS };
	static const char *envids[] = { NULL, "ab+2Bc+20d" };
	static const unsigned notifies[] = {
		0, NOTIFY_NEVER, NOTIFY_SUCCESS, NOTIFY_FAILURE, NOTIFY_DELAY,
		NOTIFY_SUCCESS | NOTIFY_FAILURE, NOTIFY_SUCCESS | NOTIFY_DELAY,
		NOTIFY_FAILURE | NOTIFY_DELAY, NOTIFY_SUCCESS | NOTIFY_FAILURE | NOTIFY_DELAY,
	};
	static const char *orcpts[] = { NULL, "rfc822;b+2Bx@example.net" };
	unsigned combos = 0;
	for (size_t r = 0; r < ARRAY_LEN(rets); r++)
	for (size_t i = 0; i < ARRAY_LEN(envids); i++)
	for (size_t n = 0; n < ARRAY_LEN(notifies); n++)
	for (size_t o = 0; o < ARRAY_LEN(orcpts); o++) {
		struct envelope env, back;
		struct buf b;
		struct err e;
		size_t off;
		make_env(&env);
		env.ret = rets[r];
		env.envid = envids[i] ? strdup(envids[i]) : NULL;
		env.rcpt[1].notify = notifies[n];	/* the quoted one: "c d" has a space */
		env.rcpt[1].orcpt = orcpts[o] ? strdup(orcpts[o]) : NULL;
		bool dsn = rets[r] || envids[i] || notifies[n] || orcpts[o];
		buf_init(&b);
		assert_int_equal(qrec_encode(&env, &b, &e), 0);
		assert_memory_equal(b.data, dsn ? "outbox-queue 2\n" : "outbox-queue 1\n", 15);
		buf_adds(&b, "X: y\r\n\r\n");
		assert_int_equal(qrec_decode(b.data, b.len, &back, &off, &e), 0);
		assert_string_equal(b.data + off, "X: y\r\n\r\n");
		assert_int_equal(back.ret, rets[r]);
		if (envids[i])
			assert_string_equal(back.envid, envids[i]);
		else
			assert_null(back.envid);
		assert_int_equal(back.rcpt[0].notify, 0);
		assert_null(back.rcpt[0].orcpt);
		assert_string_equal(back.rcpt[1].addr, "\"c d\"@example.net");
		assert_int_equal(back.rcpt[1].notify, notifies[n]);
		if (orcpts[o])
			assert_string_equal(back.rcpt[1].orcpt, orcpts[o]);
		else
			assert_null(back.rcpt[1].orcpt);
		for (size_t k = 0; k < 2; k++) {
			assert_int_equal(b.data[back.rcpt[k].status_off], 'Q');
			b.data[back.rcpt[k].status_off] = k ? RCPT_RELAYED : RCPT_FAILED;
		}
		envelope_free(&back);
		assert_int_equal(qrec_decode(b.data, b.len, &back, &off, &e), 0);
		assert_int_equal(back.rcpt[0].status, RCPT_FAILED);
		assert_int_equal(back.rcpt[1].status, RCPT_RELAYED);
		assert_int_equal(back.rcpt[1].notify, notifies[n]);
		envelope_free(&back);
		envelope_free(&env);
		buf_free(&b);
		combos++;
	}
	assert_int_equal(combos, 3 * 2 * 9 * 2);
}

/* What the encoder refuses: a value that would not decode. */
static void dsn_encode_refuses(void **state)
{
	(void)state;
	static const char *bad_envid[] = { "a b", "a\nrcpt Q <x@y>", "+0A", "" };
	for (size_t i = 0; i < ARRAY_LEN(bad_envid); i++) {
		struct envelope env;
		struct buf b;
		struct err e;
		make_env(&env);
		env.envid = strdup(bad_envid[i]);
		buf_init(&b);
		assert_int_equal(qrec_encode(&env, &b, &e), -1);
		envelope_free(&env);
		make_env(&env);
		env.rcpt[0].orcpt = strdup(bad_envid[i]);
		assert_int_equal(qrec_encode(&env, &b, &e), -1);
		envelope_free(&env);
		make_env(&env);
		env.rcpt[0].notify = i == 0 ? (NOTIFY_NEVER | NOTIFY_SUCCESS) : 0x40;
		assert_int_equal(qrec_encode(&env, &b, &e), -1);
		envelope_free(&env);
		buf_free(&b);
	}
}

/* Forged or damaged version 2 headers: every field checked. */
static void dsn_malformed(void **state)
{
	(void)state;
#define HEAD2 "outbox-queue 2\narrival 1\nuid 0\nflags 8bitmime=0 smtputf8=0\nfrom <a@b.example>\n"
#define HEAD1 "outbox-queue 1\narrival 1\nuid 0\nflags 8bitmime=0 smtputf8=0\nfrom <a@b.example>\n"
	const char *good[] = {
		HEAD2 "ret FULL\nenvid x\nrcpt Q <c@d.example> notify=NEVER orcpt=rfc822;c@d.example\nend\n",
		HEAD2 "rcpt Q <c@d.example>\nend\n",
		HEAD2 "envid x\nrcpt R <c@d.example> orcpt=utf-8;c@d.example\nend\n",
	};
	const char *bad[] = {
		HEAD1 "ret FULL\nrcpt Q <c@d.example>\nend\n",	/* version 1 has none */
		HEAD1 "rcpt Q <c@d.example> notify=NEVER\nend\n",
		HEAD2 "ret full\nrcpt Q <c@d.example>\nend\n",
		HEAD2 "ret FULLX\nrcpt Q <c@d.example>\nend\n",
		HEAD2 "ret FULL\nret HDRS\nrcpt Q <c@d.example>\nend\n",
		HEAD2 "envid x\nret FULL\nrcpt Q <c@d.example>\nend\n",	/* order */
		HEAD2 "envid x\nenvid y\nrcpt Q <c@d.example>\nend\n",
		HEAD2 "envid a b\nrcpt Q <c@d.example>\nend\n",
		HEAD2 "envid +0A\nrcpt Q <c@d.example>\nend\n",	/* decodes to LF */
		HEAD2 "envid +4a\nrcpt Q <c@d.example>\nend\n",	/* lower-case hex */
		HEAD2 "envid a+\nrcpt Q <c@d.example>\nend\n",
		HEAD2 "envid \nrcpt Q <c@d.example>\nend\n",
		HEAD2 "rcpt Q <c@d.example> notify=NEVER,SUCCESS\nend\n",
		HEAD2 "rcpt Q <c@d.example> notify=success\nend\n",	/* not canonical */
		HEAD2 "rcpt Q <c@d.example> notify=FAILURE,SUCCESS\nend\n",
		HEAD2 "rcpt Q <c@d.example> notify=\nend\n",
		HEAD2 "rcpt Q <c@d.example> notify=NEVER notify=NEVER\nend\n",
		HEAD2 "rcpt Q <c@d.example> orcpt=rfc822;x notify=NEVER\nend\n",	/* order */
		HEAD2 "rcpt Q <c@d.example> orcpt=rfc822;\nend\n",
		HEAD2 "rcpt Q <c@d.example> orcpt=;x\nend\n",
		HEAD2 "rcpt Q <c@d.example> orcpt=rfc822\nend\n",
		HEAD2 "rcpt Q <c@d.example> orcpt=rfc822;x y\nend\n",
		HEAD2 "rcpt Q <c@d.example> \nend\n",
		HEAD2 "rcpt Q <c@d.example>  notify=NEVER\nend\n",
		HEAD2 "rcpt Q <c@d.example>notify=NEVER\nend\n",
		HEAD2 "rcpt Q <c@d.example> bogus=1\nend\n",
		HEAD2 "rcpt Q <c@d.example> notify=NEVER orcpt=rfc822;x extra\nend\n",
	};
	struct envelope env;
	struct err e;
	size_t off;
	for (size_t i = 0; i < ARRAY_LEN(good); i++) {
		if (qrec_decode(good[i], strlen(good[i]), &env, &off, &e) != 0)
			fail_msg("refused good header #%zu: %s", i, e.msg);
		envelope_free(&env);
	}
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		if (qrec_decode(bad[i], strlen(bad[i]), &env, &off, &e) == 0)
			fail_msg("decoded malformed header #%zu", i);
	char nul[] = HEAD2 "envid a\0b\nrcpt Q <c@d.example>\nend\n";
	assert_int_equal(qrec_decode(nul, sizeof nul - 1, &env, &off, &e), -1);
	char nul2[] = HEAD2 "rcpt Q <c@d.example> orcpt=rfc822;a\0b\nend\n";
	assert_int_equal(qrec_decode(nul2, sizeof nul2 - 1, &env, &off, &e), -1);
#undef HEAD1
#undef HEAD2
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip), cmocka_unit_test(encode_refuses_bad_input),
		cmocka_unit_test(malformed), cmocka_unit_test(quoted_gt), cmocka_unit_test(version1_unchanged), cmocka_unit_test(dsn_round_trip),
		cmocka_unit_test(dsn_encode_refuses), cmocka_unit_test(dsn_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
