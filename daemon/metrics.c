/*
 * metrics.c - the Prometheus text format of outboxd's counters
 * (metrics.h).  Names follow Prometheus conventions: outbox_ prefix,
 * base units in the name (seconds), _total for counters.  Counters
 * start at zero with the daemon; the file is replaced by a rename of a
 * complete temporary file beside it, so a reader never sees half of
 * one (it is not fsynced: a lost write costs 15 s of figures).  The
 * temporary file is new each time, under a name no one can guess
 * (mkostemp: O_CREAT|O_EXCL), so that whatever someone put beside the
 * target -- a FIFO that would block the pool thread and the stop, a
 * link -- is never opened nor followed.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "metrics.h"
#include "outboxd.h"
#include "pool.h"

/* Upper bounds of the latency histogram's buckets (the last is +Inf). */
static const double latency_le[LATENCY_BUCKETS - 1] = { 0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600,
							21600, 86400 };

void metrics_observe_latency(struct daemon *d, double seconds, unsigned count)
{
	struct daemon_stats *st = &d->stats;
	for (int i = 0; i < LATENCY_BUCKETS; i++)
		if (i == LATENCY_BUCKETS - 1 || seconds <= latency_le[i])
			st->latency[i] += count;
	st->latency_sum += seconds * count;
}

static void header(struct buf *b, const char *name, const char *type, const char *help)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

#define OLDEST_EVERY 10.0	/* s: the oldest message is looked for at most this often */

/* The oldest message's ID: a walk of the index, so at most every
 * OLDEST_EVERY seconds (a request to the control socket must not cost
 * the queue's size each time); 0 for none. */
static uint64_t oldest_id(struct daemon *d)
{
	struct daemon_stats *st = &d->stats;
	double now = now_mono();
	if (st->oldest_at && now - st->oldest_at < OLDEST_EVERY && (st->oldest_id || !d->queue.count))
		return d->queue.count ? st->oldest_id : 0;
	uint64_t oldest = 0;
	for (qref r = qindex_next(&d->queue, 0); r; r = qindex_next(&d->queue, r)) {
		const struct qentry *e = qindex_get(&d->queue, r);
		if (!qid_is_bounce(e->id) && (!oldest || e->id < oldest))	/* a report's ID is no time */
			oldest = e->id;
	}
	st->oldest_id = oldest;
	st->oldest_at = now;
	return oldest;
}

static void queue_gauges(struct daemon *d, struct buf *b)
{
	struct qcounts n = qindex_counts(&d->queue);	/* kept by the index: O(1) */
	uint64_t oldest = oldest_id(d);
	header(b, "outbox_queue_messages", "gauge", "Messages in the queue, by state.");
	buf_printf(b, "outbox_queue_messages{state=\"queued\"} %zu\n", n.queued);
	buf_printf(b, "outbox_queue_messages{state=\"deferred\"} %zu\n", n.deferred);
	buf_printf(b, "outbox_queue_messages{state=\"active\"} %zu\n", n.active);
	buf_printf(b, "outbox_queue_messages{state=\"held\"} %zu\n", n.held);
	header(b, "outbox_queue_oldest_message_age_seconds", "gauge",
	       "Age of the oldest queued message (0 when the queue is empty).");
	double age = oldest ? now_real() - (double)(oldest >> 32) : 0;	/* an ID starts with its arrival second */
	buf_printf(b, "outbox_queue_oldest_message_age_seconds %.0f\n", age > 0 ? age : 0);
}

/* A label value with \\, " and newlines escaped (the text format). */
static const char *label_value(const char *s, char *out, size_t n)
{
	size_t k = 0;
	for (; *s && k + 3 < n; s++) {
		if (*s == '\\' || *s == '"' || *s == '\n')
			out[k++] = '\\';
		out[k++] = *s == '\n' ? 'n' : *s;
	}
	out[k] = '\0';
	return out;
}

/* One counter of struct relay_stats (at off), a line per relay. */
static void relay_counter(struct buf *b, const struct daemon_stats *st, const char *name, const char *help,
			  size_t off)
{
	char label[200];
	header(b, name, "counter", help);
	for (size_t i = 0; i < st->nrelays; i++)
		buf_printf(b, "%s{relay=\"%s\"} %llu\n", name,
			   label_value(st->by_relay[i].relay, label, sizeof label),
			   (unsigned long long)*(const uint64_t *)((const char *)&st->by_relay[i] + off));
}

static void session_counters(struct daemon *d, struct buf *b)
{
	static const char *const stage[ST_LOCAL + 1] = { "connect", "greeting", "ehlo", "starttls", "tls",
							 "auth", "mail", "rcpt", "data", "dot", "local" };
	struct pool_sessions ps[RELAYS_MAX * 2];
	size_t n = pool_sessions(d->pool, ps, ARRAY_LEN(ps));
	char label[200];
	header(b, "outbox_upstream_sessions_opened_total", "counter", "Upstream SMTP sessions opened, by relay.");
	for (size_t r = 0; r < n; r++)
		buf_printf(b, "outbox_upstream_sessions_opened_total{relay=\"%s\"} %llu\n",
			   label_value(ps[r].relay, label, sizeof label), (unsigned long long)ps[r].opened);
	header(b, "outbox_upstream_sessions_failed_total", "counter",
	       "Upstream SMTP sessions that could not be opened, by relay and the step that failed.");
	for (size_t r = 0; r < n; r++)
		for (int i = 0; i <= ST_AUTH; i++)
			buf_printf(b, "outbox_upstream_sessions_failed_total{relay=\"%s\",reason=\"%s\"} %llu\n",
				   label_value(ps[r].relay, label, sizeof label), stage[i],
				   (unsigned long long)ps[r].failed[i]);
}

/* Each relay's state (pool.h relay_condition): 1 for the one it is in,
 * 0 for the others, so that an alert can ask for login_needed == 1. */
static void relay_states(struct daemon *d, struct buf *b)
{
	struct relay_state rs[RELAYS_MAX];
	size_t n = pool_relay_states(d->pool, rs, ARRAY_LEN(rs));
	char label[200];
	header(b, "outbox_relay_state", "gauge",
	       "Each relay's state: ok, down (paused after failed sessions), held (after a quota or rate "
	       "reply) or login_needed (its OAuth2 refresh token was refused); 1 for the one it is in.");
	for (size_t r = 0; r < n; r++)
		for (int s = RELAY_OK; s <= RELAY_LOGIN_NEEDED; s++)
			buf_printf(b, "outbox_relay_state{relay=\"%s\",state=\"%s\"} %d\n",
				   label_value(rs[r].relay, label, sizeof label),
				   relay_condition_name((enum relay_condition)s), rs[r].state == (enum relay_condition)s);
}

void metrics_render(struct daemon *d, struct buf *b)
{
	static const char *const way[WAYS_IN] = { "socket", "tcp", "pickup", "bounce", "local" };
	const struct daemon_stats *st = &d->stats;
	header(b, "outbox_messages_received_total", "counter", "Messages accepted into the queue, by way in.");
	for (int i = 0; i < WAYS_IN; i++)
		buf_printf(b, "outbox_messages_received_total{way=\"%s\"} %llu\n", way[i],
			   (unsigned long long)st->intake.received_by[i]);
	relay_counter(b, st, "outbox_recipients_sent_total", "Recipients the upstream accepted, by relay.",
		      offsetof(struct relay_stats, sent));
	relay_counter(b, st, "outbox_recipients_deferred_total",
		      "Recipient attempts deferred for a retry, by relay.", offsetof(struct relay_stats, deferred));
	relay_counter(b, st, "outbox_recipients_bounced_total", "Recipients failed for good, by relay.",
		      offsetof(struct relay_stats, bounced));
	queue_gauges(d, b);
	header(b, "outbox_delivery_latency_seconds", "histogram",
	       "Time from a message's arrival to a recipient's delivery.");
	for (int i = 0; i < LATENCY_BUCKETS; i++) {
		if (i < LATENCY_BUCKETS - 1)
			buf_printf(b, "outbox_delivery_latency_seconds_bucket{le=\"%g\"} %llu\n", latency_le[i],
				   (unsigned long long)st->latency[i]);
		else
			buf_printf(b, "outbox_delivery_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
				   (unsigned long long)st->latency[i]);
	}
	buf_printf(b, "outbox_delivery_latency_seconds_sum %.3f\n", st->latency_sum);
	buf_printf(b, "outbox_delivery_latency_seconds_count %llu\n",
		   (unsigned long long)st->latency[LATENCY_BUCKETS - 1]);
	session_counters(d, b);
	relay_states(d, b);
	header(b, "outbox_start_time_seconds", "gauge", "When outboxd started (Unix time).");
	buf_printf(b, "outbox_start_time_seconds %.0f\n", st->started);
}

/* ---- [log] metrics_file ---- */

struct metrics_file {
	struct daemon *d;
	uv_timer_t timer;
	uv_work_t req;
	bool writing;
	struct buf text;	/* rendered on the loop, written on the pool */
	char *path;
	int err;		/* errno of the last failed write, to log a change once */
};

static void write_work(uv_work_t *req)
{
	struct metrics_file *m = req->data;
	/* not ending in .prom: the textfile collector skips it */
	char *tmp = xasprintf("%s.tmp.XXXXXX", m->path);
	int fd = mkostemp(tmp, O_CLOEXEC);
	/* readable by node exporter's user: exact, whatever the umask (0077) */
	int rc = fd < 0 || fchmod(fd, 0644) < 0 ? -1 : write_all(fd, m->text.data, m->text.len);
	if (fd >= 0 && close(fd) < 0)
		rc = -1;
	if (rc == 0 && rename(tmp, m->path) < 0)
		rc = -1;
	int err = rc < 0 ? errno : 0;
	if (rc < 0 && fd >= 0)
		(void)unlink(tmp);	/* ours: made by this open */
	free(tmp);
	if (err != m->err && err)
		log_warn("[log] metrics_file %s: %s", m->path, strerror(err));
	else if (err != m->err)
		log_info("[log] metrics_file %s is written again", m->path);
	m->err = err;
}

static void metrics_free(struct metrics_file *m)
{
	buf_free(&m->text);
	free(m->path);
	free(m);
}

static void write_done(uv_work_t *req, int status)
{
	struct metrics_file *m = req->data;
	(void)status;
	m->writing = false;
	if (!m->d)	/* stopped meanwhile */
		metrics_free(m);
}

static void on_tick(uv_timer_t *t)
{
	struct metrics_file *m = t->data;
	if (m->writing)
		return;	/* the disk is slow: skip a turn */
	buf_reset(&m->text);
	metrics_render(m->d, &m->text);
	m->writing = true;
	m->req.data = m;
	uv_queue_work(m->d->loop, &m->req, write_work, write_done);
}

void metrics_file_start(struct daemon *d)
{
	const char *path = d->conf->log.metrics_file;
	if (!*path)
		return;
	struct metrics_file *m = xcalloc(1, sizeof *m);
	m->d = d;
	m->path = xstrdup(path);
	buf_init(&m->text);
	uv_timer_init(d->loop, &m->timer);
	m->timer.data = m;
	uv_timer_start(&m->timer, on_tick, 0, METRICS_EVERY_S * 1000);
	d->metrics = m;
}

static void on_timer_closed(uv_handle_t *h)
{
	struct metrics_file *m = h->data;
	m->d = NULL;
	if (!m->writing)
		metrics_free(m);
}

void metrics_file_stop(struct daemon *d)
{
	struct metrics_file *m = d->metrics;
	if (!m)
		return;
	d->metrics = NULL;
	uv_timer_stop(&m->timer);
	uv_close((uv_handle_t *)&m->timer, on_timer_closed);
}
