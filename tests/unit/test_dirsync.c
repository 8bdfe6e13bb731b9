/* The directory fsync of the queue store (common/dirsync.c), with faults
 * injected through its sync function: a failed fsync() must stick.
 * Linux reports a writeback error once; a later fsync of the same
 * descriptor returns 0 though the entries were never written.  The
 * store's static steps are driven directly (dirsync.c is included), so a
 * commit whose rename was covered by the failing fsync can be made to
 * wait on it, as it does when commits run at the same moment. */
#include "unit.h"
#include "spool_env.h"
#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>
#include "../../common/dirsync.c"

/* A sync function that holds the first call until released, then fails
 * it with EIO (the "writeback error"); later calls are real fsyncs. */
struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int calls;
	bool held, release;
	int fds[8];
};

static int gated_sync(int fd, void *arg)
{
	struct gate *g = arg;
	pthread_mutex_lock(&g->mu);
	int call = g->calls++;
	if (call < 8)
		g->fds[call] = fd;
	if (call == 0) {
		g->held = true;
		pthread_cond_broadcast(&g->cv);
		while (!g->release)
			pthread_cond_wait(&g->cv, &g->mu);
	}
	pthread_mutex_unlock(&g->mu);
	if (call == 0) {
		errno = EIO;
		return -1;
	}
	return fsync(fd);
}

struct waiter {
	struct dirsync *ds;
	uint64_t n;
	int rc;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;
	w->rc = dirsync_wait(w->ds, SLOT_QUEUE, w->n);
	return NULL;
}


/* Messages in the buckets. */
static int queued_files(const struct store *s)
{
	int files = 0;
	for (unsigned b = 0; b < QBUCKETS; b++) {
		char *dir = xasprintf("%s/%02X", s->queue_dir, b);
		DIR *d = opendir(dir);
		for (struct dirent *de; d && (de = readdir(d));)
			files += de->d_name[0] != '.';
		if (d)
			closedir(d);
		free(dir);
	}
	return files;
}

static int commit_one(struct store *s)
{
	struct envelope env;
	struct qwriter w;
	struct err e;
	envelope_init(&env);
	env.sender = strdup("a@example.org");
	envelope_add_rcpt(&env, "b@example.net");
	int rc = qwriter_begin(s, &env, &w, &e);
	if (rc == 0) {
		qwriter_write(&w, "Subject: x\r\n\r\nx\r\n", 17);
		rc = qwriter_commit(&w, &e);
		qwriter_free(&w);
	}
	envelope_free(&env);
	return rc;
}

static void failed_fsync_sticks(void **state)
{
	(void)state;
	char dir[64];
	struct store s;
	struct err e;
	struct gate g = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
	make_spool(dir, "/tmp/outbox-unit-ds-");
	assert_int_equal(store_open(&s, dir, false, &e), 0);	/* buckets made at first use */
	store_set_sync(&s, gated_sync, &g);
	struct dirsync *ds = s.dirsync;
	/* two commits renamed; the second's thread starts the fsync, which
	 * covers the first's rename too */
	uint64_t n1 = dirsync_renamed(ds, SLOT_QUEUE), n2 = dirsync_renamed(ds, SLOT_QUEUE);
	struct waiter second = { ds, n2, 0 }, first = { ds, n1, 0 };
	pthread_t t2, t1;
	assert_int_equal(pthread_create(&t2, NULL, wait_thread, &second), 0);
	pthread_mutex_lock(&g.mu);
	while (!g.held)
		pthread_cond_wait(&g.cv, &g.mu);
	pthread_mutex_unlock(&g.mu);
	/* the first commit arrives while that fsync runs: it waits for it */
	assert_int_equal(pthread_create(&t1, NULL, wait_thread, &first), 0);
	for (;;) {	/* until it is waiting (it never calls sync while covered) */
		usleep(20000);
		pthread_mutex_lock(&ds->mu);
		bool covered = ds->slot[SLOT_QUEUE].busy == 1 && ds->slot[SLOT_QUEUE].covers >= n1;
		pthread_mutex_unlock(&ds->mu);
		if (covered)
			break;
	}
	usleep(50000);
	pthread_mutex_lock(&g.mu);
	g.release = true;	/* the fsync fails with EIO */
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	pthread_join(t2, NULL);
	pthread_join(t1, NULL);
	assert_int_equal(second.rc, -1);
	/* a later fsync of that descriptor would say 0: the covered commit
	 * must fail all the same, and must not even have tried it */
	assert_int_equal(first.rc, -1);
	assert_int_equal(g.calls, 1);
	struct dirslot *q = &ds->slot[SLOT_QUEUE];
	assert_int_equal(q->error, EIO);
	/* the failure is news for the daemon to log, once */
	struct err news;
	assert_true(store_news(&s, &news));
	assert_int_equal(news.sys, EIO);
	assert_non_null(strstr(news.msg, "/queue: Input/output error: no mail is queued there"));
	assert_false(store_news(&s, &news));

	/* the next commit recovers: queue/ opened anew and fsynced, then
	 * the commit goes through on the new descriptor */
	int old_fd = g.fds[0];
	struct stat a, b;
	assert_int_equal(commit_one(&s), 0);
	assert_int_equal(q->error, 0);
	assert_true(g.calls >= 3);	/* the recovery's fsync, the commit's */
	assert_int_equal(g.fds[1], q->fd);
	assert_int_equal(fstat(q->fd, &a), 0);
	assert_int_equal(stat(s.queue_dir, &b), 0);
	assert_true(a.st_ino == b.st_ino);
	assert_true(g.fds[1] != old_fd);	/* opened before the old one was closed */
	assert_true(store_news(&s, &news));	/* and that it works again */
	assert_int_equal(news.sys, 0);
	assert_non_null(strstr(news.msg, "/queue works again: mail is queued there again"));
	assert_false(store_news(&s, &news));
	/* what failed was never in queue/ for a 250: both renames counted
	 * above were fake, so one file: the recovered commit's */
	assert_int_equal(queued_files(&s), 1);
	store_close(&s);
	remove_spool(dir);
}

/* While the error stands and cannot be cleared (the directory is gone),
 * every commit fails and leaves nothing behind. */
static void no_commit_until_an_fsync_succeeds(void **state)
{
	(void)state;
	char dir[64], moved[80];
	struct store s;
	struct err e;
	make_spool(dir, "/tmp/outbox-unit-ds-");
	assert_int_equal(store_open(&s, dir, false, &e), 0);	/* buckets made at first use */
	struct dirslot *q = &s.dirsync->slot[SLOT_QUEUE];
	q->error = EIO;	/* as dirsync_failed() leaves it */
	snprintf(moved, sizeof moved, "%s/queue-gone", dir);
	assert_int_equal(rename(s.queue_dir, moved), 0);
	assert_int_equal(commit_one(&s), -1);
	assert_int_equal(q->error, EIO);
	assert_int_equal(rename(moved, s.queue_dir), 0);
	assert_int_equal(commit_one(&s), 0);
	assert_int_equal(q->error, 0);
	assert_int_equal(queued_files(&s), 1);
	store_close(&s);
	remove_spool(dir);
}

/* A sync function that records which directory each fsync was of, and
 * fails those of queue/ while fail_queue is set. */
struct record {
	const char *queue_dir;
	char seen[16][300];
	int n;
	bool fail_queue;
};

static int recording_sync(int fd, void *arg)
{
	struct record *r = arg;
	char link[64], path[300];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof path - 1);
	path[n > 0 ? n : 0] = '\0';
	if (r->n < 16)
		snprintf(r->seen[r->n++], sizeof r->seen[0], "%s", path);
	if (r->fail_queue && strcmp(path, r->queue_dir) == 0) {
		errno = EIO;
		return -1;
	}
	return fsync(fd);
}

/* A bucket made at run time: it is fsynced, then queue/ (which holds
 * its name), before the message's rename and the fsync of the bucket
 * that acknowledges it; when queue/ cannot be fsynced nothing is
 * acknowledged in the new bucket. */
static void new_bucket_is_durable_first(void **state)
{
	(void)state;
	char dir[64];
	struct store s;
	struct err e;
	make_spool(dir, "/tmp/outbox-unit-ds-");
	assert_int_equal(store_open(&s, dir, false, &e), 0);	/* buckets made at first use */
	struct record r = { .queue_dir = s.queue_dir, .fail_queue = true };
	store_set_sync(&s, recording_sync, &r);
	assert_int_equal(commit_one(&s), -1);
	assert_int_equal(queued_files(&s), 0);
	assert_int_equal(r.n, 2);	/* the new bucket, then queue/ (failed) */
	assert_int_equal(strncmp(r.seen[0], s.queue_dir, strlen(s.queue_dir)), 0);
	assert_int_equal(strlen(r.seen[0]), strlen(s.queue_dir) + 3);
	assert_string_equal(r.seen[1], s.queue_dir);
	r.fail_queue = false;
	r.n = 0;
	assert_int_equal(commit_one(&s), 0);
	assert_int_equal(queued_files(&s), 1);
	/* recovery of queue/, then for the new bucket: itself, queue/, and
	 * itself after the rename */
	assert_true(r.n >= 4);
	assert_string_equal(r.seen[r.n - 2], s.queue_dir);
	assert_int_equal(strlen(r.seen[r.n - 3]), strlen(s.queue_dir) + 3);
	assert_string_equal(r.seen[r.n - 1], r.seen[r.n - 3]);
	store_close(&s);
	remove_spool(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(failed_fsync_sticks),
		cmocka_unit_test(no_commit_until_an_fsync_succeeds),
		cmocka_unit_test(new_bucket_is_durable_first),
	};
	return cmocka_run_group_tests_name("dirsync", tests, NULL, NULL);
}
