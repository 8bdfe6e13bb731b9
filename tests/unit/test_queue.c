/* The queue store on a real directory: names, the commit protocol
 * and its marks, holds and deletes, spares, the flat layout's upgrade,
 * concurrent commits.  (test_qrecord.c has the record codec, test_qid.c
 * the IDs.) */
#include "unit.h"
#include "spool_env.h"
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "../../common/queue.h"
#include "queue_env.h"

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

/* What the start-up walk finds, as the daemon's indexer sees it; the
 * troubles it reports (for the log) are counted in walk_troubles, the
 * last one's words in walk_said. */
static int walk_troubles;
static struct err walk_said;

static int walk_all(struct store *s, struct qfound *last)
{
	struct err e;
	struct store_walk *w = store_walk_begin(s, &e);
	struct qfound f;
	int n = 0;
	enum walk_step step;
	assert_non_null(w);
	walk_troubles = 0;
	while ((step = store_walk_next(w, &f, &walk_said)) != WALK_END) {
		walk_troubles += step == WALK_TROUBLE;
		if (step == WALK_FOUND) {
			n++;
			if (last)
				*last = f;
		}
	}
	store_walk_end(w);
	return n;
}

/* Files in the buckets (each a message), and in queue/ itself. */
static int count_queued(const struct store *s)
{
	int n = 0;
	for (unsigned b = 0; b < QBUCKETS; b++) {
		char dir[300];
		snprintf(dir, sizeof dir, "%s/%02X", s->queue_dir, b);
		if (access(dir, F_OK) == 0)
			n += count_files(dir);
	}
	return n;
}


static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void names(void **state)
{
	(void)state;
	char name[QNAME_MAX], id[QID_LEN + 1];
	uint32_t next;
	unsigned tries;
	qname_format(name, "6B0E0000000000A1", 0, 0);
	assert_string_equal(name, "6B0E0000000000A1");
	assert_true(qname_parse(name, id, &next, &tries));
	assert_int_equal(tries, 0);
	qname_format(name, "6B0E0000000000A1", 0x6B0E1234, 65535);
	assert_string_equal(name, "6B0E0000000000A1.6B0E1234.65535");
	assert_true(qname_parse(name, id, &next, &tries));
	assert_string_equal(id, "6B0E0000000000A1");
	assert_int_equal(next, 0x6B0E1234);
	assert_int_equal(tries, 65535);
	const char *bad[] = { "6B0E0000000000A", "6B0E0000000000A1.", "6B0E0000000000A1.6B0E1234",
			      "6B0E0000000000A1.6B0E1234.", "6B0E0000000000A1.6B0E1234.0",
			      "6B0E0000000000A1.6B0E1234.01", "6B0E0000000000A1.6B0E1234.65536",
			      "6B0E0000000000A1.6b0e1234.1", "6B0E0000000000A1.6B0E123.1",
			      "6B0E0000000000A1.6B0E1234.1x", "6B0E0000000000A1x", "6b0e0000000000a1",
			      "spare.1", "", "6B0E0000000000A1.H.H", "6B0E0000000000A1H",
			      "6B0E0000000000A1.6B0E1234.1.h", "6B0E0000000000A1.6B0E1234.H.1" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (qname_parse(bad[i], id, &next, &tries))
			fail_msg("took %s", bad[i]);
	/* held: .H after either form, parsed as the same name */
	qname_set_held(name, true);
	assert_string_equal(name, "6B0E0000000000A1.6B0E1234.65535.H");
	assert_true(qname_held(name));
	assert_true(qname_parse(name, id, &next, &tries));
	assert_int_equal(tries, 65535);
	qname_set_held(name, true);	/* once only */
	assert_string_equal(name, "6B0E0000000000A1.6B0E1234.65535.H");
	qname_set_held(name, false);
	assert_string_equal(name, "6B0E0000000000A1.6B0E1234.65535");
	assert_false(qname_held(name));
	qname_format(name, "6B0E0000000000A1", 0, 0);
	qname_set_held(name, true);
	assert_string_equal(name, "6B0E0000000000A1.H");
	assert_true(qname_parse(name, id, &next, &tries));
	assert_int_equal(tries, 0);
	/* the ID's value and the bucket */
	assert_int_equal(qid_value("6B0E0000000000A1"), 0x6B0E0000000000A1ULL);
	qid_format(0x6B0E0000000000A1ULL, id);
	assert_string_equal(id, "6B0E0000000000A1");
	assert_true(qid_bucket(id) < QBUCKETS);
	/* IDs made one after another spread over the buckets */
	struct store s = { 0 };
	bool seen[QBUCKETS] = { false };
	int distinct = 0;
	for (int i = 0; i < 4096; i++) {
		store_new_id(&s, id);
		unsigned b = qid_bucket(id);
		distinct += !seen[b];
		seen[b] = true;
	}
	assert_true(distinct > QBUCKETS * 9 / 10);
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
	make_spool(dir, "/tmp/outbox-unit-q-");
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
	char id[QNAME_MAX];
	strcpy(id, w.id);
	assert_int_equal(qwriter_commit(&w, &e), 0);
	qwriter_free(&w);
	assert_int_equal(count_files(s.tmp_dir), 0);
	assert_int_equal(count_files(s.queue_dir), QBUCKETS);	/* made at open */
	assert_int_equal(count_queued(&s), 1);
	char path[300];
	snprintf(path, sizeof path, "%s/%02X/%s", s.queue_dir, qid_bucket(id), id);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(store_load(&s, id, &back, &off, &fd, &size, &e), 0);
	assert_int_equal(size, 18);
	assert_int_equal(back.flags, ENV_8BITMIME);	/* rewritten at commit */
	assert_int_equal(store_mark(fd, &back.rcpt[1], RCPT_SENT, &e), 0);
	/* deferred: the schedule goes into the name; the open file stays good */
	assert_int_equal(store_note_retry(&s, id, 0x70000000, 3, &e), 0);
	assert_int_equal(strlen(id), QID_LEN + 11);
	assert_int_equal(access(path, F_OK), -1);
	struct qfound f;
	assert_int_equal(walk_all(&s, &f), 1);
	assert_int_equal(f.id, qid_value(w.id));
	assert_int_equal(f.next_try, 0x70000000);
	assert_int_equal(f.tries, 3);
	close(fd);
	envelope_free(&back);
	/* a caller with an old name still finds it, and learns the new one */
	char old[QNAME_MAX];
	strcpy(old, w.id);
	assert_int_equal(store_load(&s, old, &back, &off, NULL, NULL, &e), 0);
	assert_string_equal(old, id);
	assert_int_equal(back.rcpt[1].status, RCPT_SENT);
	assert_int_equal(envelope_pending(&back), 1);
	envelope_free(&back);
	/* an aborted message leaves nothing */
	assert_int_equal(qwriter_begin(&s, &env, &w, &e), 0);
	qwriter_write(&w, "x", 1);
	qwriter_abort(&w);
	assert_int_equal(count_files(s.tmp_dir), 0);
	/* tmp leftovers go at start; names that are no queue file go to
	 * corrupt/ (from queue/ and from a bucket); a file with a good name
	 * and a bad header is found by name and refused when loaded */
	snprintf(path, sizeof path, "%s/tmp/leftover", dir);
	write_file(path, "");
	snprintf(path, sizeof path, "%s/queue/garbage", dir);
	write_file(path, "x");
	snprintf(path, sizeof path, "%s/queue/%02X/garbage", dir, qid_bucket(id));
	write_file(path, "x");
	char bad[QNAME_MAX] = "0000000000000ABC";
	snprintf(path, sizeof path, "%s/queue/%02X/%s", dir, qid_bucket(bad), bad);
	char bucket[300];
	snprintf(bucket, sizeof bucket, "%s/queue/%02X", dir, qid_bucket(bad));
	(void)mkdir(bucket, 0700);
	write_file(path, "garbage\n");
	assert_int_equal(store_clean_tmp(&s), 1);	/* the store says it, the daemon logs it */
	assert_int_equal(count_files(s.tmp_dir), 0);
	assert_int_equal(walk_all(&s, NULL), 2);
	assert_int_equal(count_files(s.corrupt_dir), 2);
	assert_int_equal(walk_troubles, 2);	/* one for each file moved aside */
	assert_non_null(strstr(walk_said.msg, "garbage: unreadable queue file moved to corrupt/garbage"));
	assert_int_equal(store_load(&s, bad, &back, &off, NULL, NULL, &e), -1);
	assert_int_equal(errno, EBADMSG);
	assert_true(store_load_error_is_permanent(errno));
	struct err said;
	assert_int_equal(store_quarantine(&s, bad, e.msg, &said), 0);
	assert_int_equal(count_files(s.corrupt_dir), 3);
	assert_string_equal(said.msg, "0000000000000ABC: unreadable queue file moved to "
			    "corrupt/0000000000000ABC: not an outbox queue file (bad magic)");
	assert_int_equal(store_remove(&s, id, 100, &e), 0);
	assert_int_equal(count_queued(&s), 0);
	envelope_free(&env);
	store_close(&s);
	remove_spool(dir);
}

/* The upgrade: a queue of the flat layout (queue/ID) moves into its
 * buckets, every message once; a message with both names (a crash in
 * the middle of the move) is kept once. */
static void flat_upgrade(void **state)
{
	(void)state;
	char dir[64], id[QID_LEN + 1], path[300], to[300];
	struct store s;
	struct envelope env, back;
	struct err e;
	struct buf rec;
	size_t off;
	make_spool(dir, "/tmp/outbox-unit-q-");
	assert_int_equal(store_open(&s, dir, true, &e), 0);
	make_env(&env);
	buf_init(&rec);
	assert_int_equal(qrec_encode(&env, &rec, &e), 0);
	buf_adds(&rec, "Subject: flat\r\n\r\nx\r\n");
	for (int i = 0; i < 2500; i++) {	/* more than one chunk of moves */
		store_new_id(&s, id);
		snprintf(path, sizeof path, "%s/%s", s.queue_dir, id);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write_all(fd, rec.data, rec.len), 0);
		close(fd);
	}
	/* the last one has its bucket name already */
	snprintf(to, sizeof to, "%s/%02X", s.queue_dir, qid_bucket(id));
	(void)mkdir(to, 0700);
	snprintf(to, sizeof to, "%s/%02X/%s", s.queue_dir, qid_bucket(id), id);
	assert_int_equal(link(path, to), 0);
	assert_int_equal(walk_all(&s, NULL), 2500);
	assert_int_equal(count_files(s.queue_dir) <= QBUCKETS, 1);	/* buckets only */
	assert_int_equal(count_queued(&s), 2500);
	char name[QNAME_MAX];
	strcpy(name, id);
	assert_int_equal(store_load(&s, name, &back, &off, NULL, NULL, &e), 0);
	envelope_free(&back);
	assert_int_equal(walk_all(&s, NULL), 2500);	/* a second start finds the same */
	buf_free(&rec);
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
	snprintf(path, sizeof path, "%s/%02X/%s", s->queue_dir, qid_bucket(id), id);
	assert_int_equal(stat(path, &st), 0);	/* the inode is the one written: rename keeps it */
	return st.st_ino;
}

/* Hold and delete are renames and unlinks in the bucket, fsynced: the
 * walk sees a held message as held, and a deleted one not at all. */
static int sync_calls;
static int count_sync(int fd, void *arg)
{
	(void)arg;
	sync_calls++;
	return fsync(fd);
}

static void hold_and_delete(void **state)
{
	(void)state;
	char dir[64], a[QNAME_MAX], b[QNAME_MAX];
	struct store s;
	struct envelope env, back;
	struct err e;
	size_t off;
	uint64_t size;
	make_spool(dir, "/tmp/outbox-unit-q-");
	assert_int_equal(store_open(&s, dir, true, &e), 0);
	make_env(&env);
	commit_one(&s, &env, "Subject: a\r\n\r\na\r\n", a);
	commit_one(&s, &env, "Subject: b\r\n\r\nb\r\n", b);
	store_set_sync(&s, count_sync, NULL);
	sync_calls = 0;
	assert_int_equal(store_set_held(&s, a, true, &e), 0);
	assert_true(qname_held(a));
	assert_true(sync_calls >= 1);	/* the operator's word is durable */
	assert_int_equal(store_set_held(&s, a, true, &e), 0);	/* already: nothing to do */
	assert_int_equal(store_load(&s, a, &back, &off, NULL, &size, &e), 0);
	envelope_free(&back);
	sync_calls = 0;
	assert_int_equal(store_delete(&s, b, &e), 0);
	assert_true(sync_calls >= 1);
	assert_int_equal(store_delete(&s, b, &e), -1);	/* gone */
	struct store_walk *w = store_walk_begin(&s, &e);
	struct qfound f;
	int n = 0;
	enum walk_step step;
	while ((step = store_walk_next(w, &f, &e)) != WALK_END) {
		if (step != WALK_FOUND)
			continue;
		n++;
		assert_true(f.held);
		assert_int_equal(f.id, qid_value(a));
	}
	store_walk_end(w);
	assert_int_equal(n, 1);
	assert_int_equal(store_set_held(&s, a, false, &e), 0);	/* release */
	assert_false(qname_held(a));
	assert_int_equal(store_load(&s, a, &back, &off, NULL, &size, &e), 0);
	envelope_free(&back);
	envelope_free(&env);
	store_close(&s);
	remove_spool(dir);
}

/* store_ripen_spares() fsyncs the bucket a spare left, so the next
 * commit (into any bucket) rewrites it; when that fsync fails, the
 * spare is never used. */
static int ripen_sync_calls, ripen_sync_fail;
static char ripen_synced[400];
static int ripen_sync(int fd, void *arg)
{
	(void)arg;
	char link[64];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, ripen_synced, sizeof ripen_synced - 1);
	ripen_synced[n > 0 ? n : 0] = '\0';
	ripen_sync_calls++;
	if (ripen_sync_fail) {
		errno = EIO;
		return -1;
	}
	return fsync(fd);
}

static void spare_ripening(void **state)
{
	(void)state;
	char dir[64], a[QNAME_MAX], c[QNAME_MAX], want[400];
	struct store s;
	struct envelope env;
	struct err e;
	make_spool(dir, "/tmp/outbox-unit-q-");
	assert_int_equal(store_open(&s, dir, true, &e), 0);
	make_env(&env);
	assert_int_equal(store_ripen_spares(&s), 0);	/* no spare: nothing to do */
	ino_t ia = commit_one(&s, &env, "Subject: a\r\n\r\na\r\n", a);
	assert_int_equal(store_remove(&s, a, 100, &e), 0);
	store_set_sync(&s, ripen_sync, NULL);
	ripen_sync_calls = 0;
	assert_int_equal(store_ripen_spares(&s), 1);
	assert_int_equal(ripen_sync_calls, 1);
	snprintf(want, sizeof want, "%s/%02X", s.queue_dir, qid_bucket(a));
	char real[PATH_MAX];
	assert_non_null(realpath(want, real));
	assert_string_equal(ripen_synced, real);	/* the bucket it left */
	assert_int_equal(store_ripen_spares(&s), 0);	/* ripe now: no second fsync */
	ino_t ic = commit_one(&s, &env, "Subject: c\r\n\r\nc\r\n", c);
	assert_true(ic == ia);
	/* a failed fsync proves nothing: that spare is forgotten */
	assert_int_equal(store_remove(&s, c, 100, &e), 0);
	ripen_sync_fail = 1;
	assert_int_equal(store_ripen_spares(&s), 1);
	ripen_sync_fail = 0;
	assert_int_equal(store_ripen_spares(&s), 0);
	char d2[QNAME_MAX];
	for (int i = 0; i < 50; i++) {	/* commits into other buckets never take it */
		ino_t id = commit_one(&s, &env, "Subject: d\r\n\r\nd\r\n", d2);
		if (qid_bucket(d2) == qid_bucket(c))
			break;	/* (that bucket refuses until recovered, or recovers) */
		assert_true(id != ic);
		assert_int_equal(store_remove(&s, d2, 1 << 20, &e), 0);
	}
	envelope_free(&env);
	store_close(&s);
	remove_spool(dir);
}

/* A removed message's file is rewritten for a later one, but only after
 * an fsync of its bucket that followed its removal, and without its old
 * tail. */
/* The one spare in tmp/ holds nothing but zeros (and is not empty:
 * its blocks are kept for the next commit). */
static bool spare_is_zeros(const char *tmp)
{
	DIR *d = opendir(tmp);
	struct dirent *de;
	bool zeros = false;
	while (d && (de = readdir(d))) {
		if (strncmp(de->d_name, "spare.", 6) != 0)
			continue;
		char path[600], buf[4096];
		snprintf(path, sizeof path, "%s/%s", tmp, de->d_name);
		int fd = open(path, O_RDONLY);
		ssize_t n, total = 0;
		zeros = fd >= 0;
		while (fd >= 0 && (n = read(fd, buf, sizeof buf)) > 0) {
			total += n;
			for (ssize_t i = 0; i < n; i++)
				zeros = zeros && buf[i] == 0;
		}
		zeros = zeros && total > 0;
		if (fd >= 0)
			close(fd);
	}
	if (d)
		closedir(d);
	return zeros;
}

static void spare_files(void **state)
{
	(void)state;
	char dir[64];
	struct store s;
	struct envelope env, back;
	struct err e;
	char a[QNAME_MAX], b[QNAME_MAX], c[QNAME_MAX];
	size_t off;
	int fd;
	uint64_t size;
	make_spool(dir, "/tmp/outbox-unit-q-");
	assert_int_equal(store_open(&s, dir, true, &e), 0);
	make_env(&env);
	ino_t ia = commit_one(&s, &env, "Subject: long one\r\n\r\nlong body line\r\n", a);
	assert_int_equal(store_remove(&s, a, 100, &e), 0);
	assert_int_equal(count_queued(&s), 0);
	assert_int_equal(count_files(s.tmp_dir), 1);	/* the spare */
	assert_true(spare_is_zeros(s.tmp_dir));	/* what is delivered is gone */
	/* until a commit into a's bucket has fsynced it after the removal,
	 * the spare is not used; the commit after that one may */
	bool synced = false;
	ino_t ic = 0;
	for (int i = 0; i < 5000 && ic != ia; i++) {
		ic = commit_one(&s, &env, "Subject: c\r\n\r\nc\r\n", c);
		if (!synced)
			assert_true(ic != ia);
		synced = synced || qid_bucket(c) == qid_bucket(a);
		if (ic != ia)
			assert_int_equal(store_remove(&s, c, 1 << 20, &e), 0);	/* too big to keep */
	}
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
	commit_one(&s, &env, "Subject: b\r\n\r\nb\r\n", b);
	assert_int_equal(store_remove(&s, b, 100, &e), 0);
	assert_int_equal(count_files(s.tmp_dir), 1);
	assert_int_equal(store_clean_tmp(&s), 0);	/* a spare is no partial message */
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
	make_spool(dir, "/tmp/outbox-unit-q-");
	assert_int_equal(store_open(&s, dir, true, &e), 0);
	make_env(&env);
	struct committer c = { &s, &env, &mu, 50, 0 };
	for (int i = 0; i < 8; i++)
		assert_int_equal(pthread_create(&t[i], NULL, commit_many, &c), 0);
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(c.failed, 0);
	assert_int_equal(count_queued(&s), 8 * 50);
	assert_int_equal(count_files(s.tmp_dir), 0);
	envelope_free(&env);
	store_close(&s);
	remove_spool(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(commit_and_mark),
		cmocka_unit_test(spare_files), cmocka_unit_test(spare_ripening), cmocka_unit_test(hold_and_delete), cmocka_unit_test(concurrent_commits),
		cmocka_unit_test(names), cmocka_unit_test(flat_upgrade),
	};
	return cmocka_run_group_tests_name("queue", tests, NULL, NULL);
}
