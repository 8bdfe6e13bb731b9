/* The submission session as a whole: the input is what one client sends
 * on outboxd's Unix socket (the real smtp_session.c, scheduler and queue
 * index on a libuv loop, the real store on a tmpfs); the worker pool is
 * replaced by a stand-in that marks each handed-out message done.
 * Invariants: every reply line is "ddd " or "ddd-" and fits the limits;
 * every "250 ... queued as ID" names a queue file that loads, whose
 * message has CRLF line endings only and no NUL (so nothing the client
 * sent can make the upstream see a different end of data); no file is
 * committed that was not acknowledged, but for the one whose commit was
 * in flight when the client's EOF came; the session ends and is freed. */
#include "fuzz.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "../../common/log.h"
#include "../../daemon/indexer.h"
#include "../../daemon/outboxd.h"
#include "../../daemon/pool.h"
#include "../../daemon/sessions.h"

static struct daemon d;
static uv_pipe_t server;
static char spool[128], sock[160];
static char handed[64][QID_LEN + 1];
static size_t nhanded;

/* ---- stand-ins for the worker pool (the scheduler's hooks) and the daemon's end ---- */
static size_t workers(void *arg) { (void)arg; return 1; }
static void part_stopped(struct daemon *dd) { (void)dd; }
static bool cancel(void *arg, const char *id) { (void)arg; (void)id; return false; }
static void flush_relays(void *arg) { (void)arg; }
static void submit(void *arg, const char *id, unsigned tries, uint32_t next_try)
{
	(void)arg;
	(void)tries;
	(void)next_try;
	if (nhanded < 64)
		memcpy(handed[nhanded++], id, QID_LEN + 1);
}
static const struct sched_hooks hooks = { .submit = submit, .cancel = cancel, .workers = workers,
					  .flush_relays = flush_relays };

static void on_connection(uv_stream_t *srv, int status)
{
	if (status == 0)
		session_accept(&d, srv, true);
}

static void setup(void)
{
	struct buf errors;
	char conf[200];
	snprintf(spool, sizeof spool, "/dev/shm/outbox-fuzz-%d", (int)getpid());
	snprintf(sock, sizeof sock, "%s.sock", spool);
	snprintf(conf, sizeof conf, "%s.conf", spool);
	FILE *f = fopen(conf, "w");
	fprintf(f, "[queue]\nspool = %s\nmin_free = 0\nmax_message_size = 200K\nmax_recipients = 20\n"
		   "[listen]\nsocket = %s\n[address]\ndomain = fuzz.example\n[aliases]\n"
		   "root = a@b.example, ops\n[log]\ntarget = stderr\nlevel = err\n", spool, sock);
	fclose(f);
	buf_init(&errors);
	d.part_stopped = part_stopped;
	d.conf = config_load(conf, CONF_CLIENT, &errors);
	CHECK(d.conf);
	log_open("fuzz", LOG_TO_STDERR, LOG_LVL_ERR);
	struct err e;
	CHECK(store_open(&d.store, spool, true, &e) == 0);
	d.loop = uv_default_loop();
	d.max_sessions = MAX_SESSIONS;
	snprintf(d.hostname, sizeof d.hostname, "fuzz.example");
	qindex_init(&d.queue);
	sched_init(&d.sched, d.loop, &d.queue, &hooks);
	d.intake = (struct intake_ctx){ d.loop, &d.store, &d.conf, d.hostname, &d.queue, &d.sched,
					&d.stats.intake, false };
	unlink(sock);
	uv_pipe_init(d.loop, &server, 0);
	CHECK(uv_pipe_bind(&server, sock) == 0);
	CHECK(uv_listen((uv_stream_t *)&server, 16, on_connection) == 0);
}

/* Check one whole reply text; returns the queue ID it acknowledged, if any. */
static bool check_replies(const char *r, size_t n, char ids[][QID_LEN + 1], size_t *nids)
{
	size_t pos = 0;
	while (pos < n) {
		const char *nl = memchr(r + pos, '\n', n - pos);
		CHECK(nl && nl > r + pos && nl[-1] == '\r');	/* CRLF lines only */
		size_t l = (size_t)(nl - (r + pos)) - 1;
		const char *line = r + pos;
		CHECK(l >= 4 && l < 1024 && line[0] >= '2' && line[0] <= '5');
		CHECK(line[3] == ' ' || line[3] == '-');
		const char *q = memmem(line, l, "queued as ", 10);
		if (q && line[0] == '2' && *nids < 64) {
			CHECK(l - (size_t)(q + 10 - line) == QID_LEN);
			memcpy(ids[*nids], q + 10, QID_LEN);
			ids[(*nids)++][QID_LEN] = '\0';
		}
		pos = (size_t)(nl - r) + 1;
	}
	return true;
}

static void check_committed(const char *id)
{
	struct envelope env;
	struct err e;
	size_t off;
	uint64_t size;
	int fd = -1;
	char name[QNAME_MAX];
	snprintf(name, sizeof name, "%s", id);
	CHECK(store_load(&d.store, name, &env, &off, &fd, &size, &e) == 0);
	char *msg = malloc(size + 1);
	CHECK(pread(fd, msg, size, (off_t)off) == (ssize_t)size);
	for (uint64_t i = 0; i < size; i++) {
		CHECK(msg[i] != '\0');
		if (msg[i] == '\r')
			CHECK(i + 1 < size && msg[i + 1] == '\n');
		if (msg[i] == '\n')
			CHECK(i > 0 && msg[i - 1] == '\r');
	}
	CHECK(size >= 2 && msg[size - 2] == '\r' && msg[size - 1] == '\n');
	free(msg);
	close(fd);
	envelope_free(&env);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!d.loop)
		setup();
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
	CHECK(connect(c, (struct sockaddr *)&sa, sizeof sa) == 0);
	fcntl(c, F_SETFL, O_NONBLOCK);
	struct buf replies;
	buf_init(&replies);
	size_t sent = 0;
	bool shut = false;
	for (long spins = 0; spins < 2000000; spins++) {
		uv_run(d.loop, UV_RUN_NOWAIT);
		if (sent < size) {
			ssize_t w = write(c, data + sent, size - sent);
			if (w > 0)
				sent += (size_t)w;
			else if (w < 0 && errno != EAGAIN)
				sent = size;	/* the server closed on us */
		} else if (!shut) {
			shutdown(c, SHUT_WR);
			shut = true;
		}
		buf_reserve(&replies, 4096);
		ssize_t r = read(c, replies.data + replies.len, 4096);
		if (r == 0 && shut)
			break;
		if (r > 0)
			replies.len += (size_t)r;
		if (r < 0 && errno != EAGAIN) {
			if (shut)
				break;
			sent = size;	/* reset by the server: stop sending */
		}
	}
	close(c);
	for (long spins = 0; d.nsessions > 0 && spins < 2000000; spins++)
		uv_run(d.loop, UV_RUN_NOWAIT);
	CHECK(d.nsessions == 0);	/* the session ended and was freed */
	char ids[64][QID_LEN + 1];
	size_t nids = 0;
	check_replies(replies.data ? replies.data : "", replies.len, ids, &nids);
	for (size_t i = 0; i < nids; i++)
		check_committed(ids[i]);
	/* nothing committed that was not acknowledged: then clear the queue */
	struct err e;
	size_t files = 0;
	for (size_t i = 0; i < nhanded; i++) {
		struct delivery_result r = { .done = true };
		memcpy(r.id, handed[i], sizeof r.id);
		sched_result(&d.sched, &r);
	}
	nhanded = 0;
	for (unsigned b = 0; b < QBUCKETS; b++) {
		char path[300];
		snprintf(path, sizeof path, "%s/queue/%02X", spool, b);
		DIR *dir = opendir(path);
		for (struct dirent *de; dir && (de = readdir(dir));) {
			if (de->d_name[0] == '.')
				continue;
			files++;
			(void)store_remove(&d.store, de->d_name, 0, &e);
		}
		if (dir)
			closedir(dir);
	}
	/* every 250 named a committed file (above); the one commit in flight
	 * when the client's EOF came may be queued without its reply */
	CHECK(files == nids || files == nids + 1);
	buf_free(&replies);
	return 0;
}
