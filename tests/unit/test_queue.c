/* Queue records: encode/decode round trip, malformed headers, and the
 * commit protocol on a real directory. */
#include "unit.h"
#include <dirent.h>
#include <pthread.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../../common/queue.h"

static void make_env(struct envelope *env)
{
	envelope_init(env);
	env->arrival = 1732700000.5;
	env->uid = 1000;
	env->flags = ENV_8BITMIME;
	env->sender = strdup("a@example.org");
	envelope_add_rcpt(env, "b@example.net");
	envelope_add_rcpt(env, "\"c d\"@example.net");
}

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

static void ids(void **state)
{
	(void)state;
	struct store s = { 0 };
	char a[QID_LEN + 1], b[QID_LEN + 1];
	store_new_id(&s, a);
	store_new_id(&s, b);
	assert_true(qid_valid(a));
	assert_string_not_equal(a, b);
	assert_false(qid_valid("../etc/passwd"));
	assert_false(qid_valid("0123456789abcdef"));
}

static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static void scan_cb(const char *id, const struct envelope *env, uint64_t size, void *arg)
{
	(void)id;
	(void)env;
	*(uint64_t *)arg += size;
}

/* A fresh spool directory under /tmp (mkdtemp), and its removal. */
#define SPOOL_TEMPLATE "/tmp/outbox-unit-q-"
static void make_spool(char dir[64])
{
	snprintf(dir, 64, "%s", SPOOL_TEMPLATE);
	memset(dir + strlen(dir), 'X', 6);	/* the mkdtemp template */
	dir[strlen(SPOOL_TEMPLATE) + 6] = '\0';
	assert_non_null(mkdtemp(dir));
}

static void remove_spool(const char *dir)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void commit_and_mark(void **state)
{
	(void)state;
	char dir[64];
	struct store s;
	struct envelope env, back;
	struct qwriter w;
	struct err e;
	size_t off;
	int fd;
	uint64_t size;
	make_spool(dir);
	assert_int_equal(store_open(&s, dir, true, &e), 0);
	/* a second daemon on the same spool is refused */
	struct store s2;
	assert_int_equal(store_open(&s2, dir, true, &e), -1);
	assert_non_null(strstr(e.msg, "in use"));
	make_env(&env);
	env.flags = 0;
	assert_int_equal(qwriter_begin(&s, &env, &w, &e), 0);
	assert_int_equal(count_files(s.tmp_dir), 0);	/* a small message waits in memory */
	qwriter_write(&w, "Subject: t\r\n\r\n\xc3\xa9\r\n", 18);
	w.flags |= ENV_8BITMIME;
	char id[QID_LEN + 1];
	strcpy(id, w.id);
	assert_int_equal(qwriter_commit(&w, &e), 0);
	qwriter_free(&w);
	assert_int_equal(count_files(s.tmp_dir), 0);
	assert_int_equal(count_files(s.queue_dir), 1);
	assert_int_equal(store_load(&s, id, &back, &off, &fd, &size, &e), 0);
	assert_int_equal(size, 18);
	assert_int_equal(back.flags, ENV_8BITMIME);	/* rewritten at commit */
	assert_int_equal(store_mark(fd, &back.rcpt[1], RCPT_SENT, &e), 0);
	close(fd);
	envelope_free(&back);
	assert_int_equal(store_load(&s, id, &back, &off, NULL, NULL, &e), 0);
	assert_int_equal(back.rcpt[1].status, RCPT_SENT);
	assert_int_equal(envelope_pending(&back), 1);
	envelope_free(&back);
	/* an aborted message leaves nothing */
	assert_int_equal(qwriter_begin(&s, &env, &w, &e), 0);
	qwriter_write(&w, "x", 1);
	qwriter_abort(&w);
	assert_int_equal(count_files(s.tmp_dir), 0);
	/* the scan removes tmp leftovers and moves corrupt files aside */
	char path[300];
	snprintf(path, sizeof path, "%s/tmp/leftover", dir);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	snprintf(path, sizeof path, "%s/queue/0000000000000ABC", dir);
	FILE *f = fopen(path, "w");
	fputs("garbage\n", f);
	fclose(f);
	uint64_t total = 0;
	assert_int_equal(store_scan(&s, scan_cb, &total, &e), 0);
	assert_int_equal(total, 18);
	assert_int_equal(count_files(s.tmp_dir), 0);
	assert_int_equal(count_files(s.corrupt_dir), 1);
	assert_int_equal(store_remove(&s, id, &e), 0);
	assert_int_equal(count_files(s.queue_dir), 0);
	envelope_free(&env);
	store_close(&s);
	remove_spool(dir);
}

/* Commit one message with body `body`; its ID in id, inode returned. */
static ino_t commit_one(struct store *s, const struct envelope *env, const char *body, char *id)
{
	struct qwriter w;
	struct err e;
	struct stat st;
	char path[400];
	assert_int_equal(qwriter_begin(s, env, &w, &e), 0);
	qwriter_write(&w, body, strlen(body));
	strcpy(id, w.id);
	assert_int_equal(qwriter_commit(&w, &e), 0);
	qwriter_free(&w);
	snprintf(path, sizeof path, "%s/%s", s->queue_dir, id);
	assert_int_equal(stat(path, &st), 0);	/* the inode is the one written: rename keeps it */
	return st.st_ino;
}

/* A removed message's file is rewritten for a later one, but only after
 * a queue/ fsync that followed its removal, and without its old tail. */
static void spare_files(void **state)
{
	(void)state;
	char dir[64];
	struct store s;
	struct envelope env, back;
	struct err e;
	char a[QID_LEN + 1], b[QID_LEN + 1], c[QID_LEN + 1];
	size_t off;
	int fd;
	uint64_t size;
	make_spool(dir);
	assert_int_equal(store_open(&s, dir, true, &e), 0);
	make_env(&env);
	ino_t ia = commit_one(&s, &env, "Subject: long one\r\n\r\nlong body line\r\n", a);
	assert_int_equal(store_remove(&s, a, &e), 0);
	assert_int_equal(count_files(s.queue_dir), 0);
	assert_int_equal(count_files(s.tmp_dir), 1);	/* the spare */
	/* no queue/ fsync since the removal: the spare must not be used */
	ino_t ib = commit_one(&s, &env, "Subject: b\r\n\r\nb\r\n", b);
	assert_true(ib != ia);
	/* b's commit synced queue/ after a's removal: now it may */
	ino_t ic = commit_one(&s, &env, "Subject: c\r\n\r\nc\r\n", c);
	assert_true(ic == ia);
	assert_int_equal(count_files(s.tmp_dir), 0);
	assert_int_equal(store_load(&s, c, &back, &off, &fd, &size, &e), 0);
	assert_int_equal(size, strlen("Subject: c\r\n\r\nc\r\n"));	/* the old, longer tail is gone */
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal((uint64_t)st.st_size, off + size);
	char body[32] = { 0 };
	assert_int_equal(pread(fd, body, sizeof body - 1, (off_t)off), (ssize_t)size);
	assert_string_equal(body, "Subject: c\r\n\r\nc\r\n");
	close(fd);
	envelope_free(&back);
	/* spares left at start-up are removed like any tmp leftover */
	assert_int_equal(store_remove(&s, b, &e), 0);
	assert_int_equal(count_files(s.tmp_dir), 1);
	assert_int_equal(store_scan(&s, scan_cb, &size, &e), 0);
	assert_int_equal(count_files(s.tmp_dir), 0);
	envelope_free(&env);
	store_close(&s);
	remove_spool(dir);
}

/* Commits from several threads at once share directory fsyncs; none is
 * lost or left waiting.  IDs are assigned under a lock (store_new_id is
 * the loop thread's in the daemon). */
struct committer {
	struct store *s;
	struct envelope *env;
	pthread_mutex_t *mu;
	int n;
	int failed;	/* counted here, asserted on the main thread (cmocka) */
};

static void *commit_many(void *arg)
{
	struct committer *c = arg;
	for (int i = 0; i < c->n; i++) {
		struct qwriter w;
		struct err e;
		pthread_mutex_lock(c->mu);
		int rc = qwriter_begin(c->s, c->env, &w, &e);
		pthread_mutex_unlock(c->mu);
		if (rc == 0) {
			qwriter_write(&w, "Subject: x\r\n\r\nx\r\n", 17);
			rc = qwriter_commit(&w, &e);
			qwriter_free(&w);
		}
		if (rc < 0)
			__atomic_add_fetch(&c->failed, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void concurrent_commits(void **state)
{
	(void)state;
	char dir[64];
	struct store s;
	struct envelope env;
	struct err e;
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_t t[8];
	make_spool(dir);
	assert_int_equal(store_open(&s, dir, true, &e), 0);
	make_env(&env);
	struct committer c = { &s, &env, &mu, 50, 0 };
	for (int i = 0; i < 8; i++)
		assert_int_equal(pthread_create(&t[i], NULL, commit_many, &c), 0);
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(c.failed, 0);
	assert_int_equal(count_files(s.queue_dir), 8 * 50);
	assert_int_equal(count_files(s.tmp_dir), 0);
	envelope_free(&env);
	store_close(&s);
	remove_spool(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip), cmocka_unit_test(encode_refuses_bad_input),
		cmocka_unit_test(malformed), cmocka_unit_test(ids), cmocka_unit_test(commit_and_mark),
		cmocka_unit_test(spare_files), cmocka_unit_test(concurrent_commits),
	};
	return cmocka_run_group_tests_name("queue", tests, NULL, NULL);
}
