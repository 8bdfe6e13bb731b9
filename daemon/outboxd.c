/*
 * outboxd.c - the daemon: options, configuration, privileges, the queue
 * rebuild at start, the libuv loop, and signals.
 *
 * Start-up order: load and check the configuration (exit 78 if bad);
 * if started as root, prepare the spool and socket directories for
 * [queue] user and drop to that user for good; lock the spool and clear
 * its tmp/; listen; start the workers and the indexer (indexer.c: the
 * queue is indexed while new mail is already taken); tell systemd we
 * are ready; run the loop.
 *
 * Signals: SIGHUP reloads the configuration (read on the thread pool,
 * applied on the loop; a bad file keeps the old one); SIGUSR1 makes
 * every deferred message due (sendmail -q);
 * SIGTERM/SIGINT stop accepting, close idle sessions, give
 * sessions receiving a message SHUTDOWN_GRACE seconds, and exit 0.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include "../common/log.h"
#include "outboxd.h"
#include "../common/tokens.h"
#include "bounce.h"
#include "notify.h"
#include "control.h"
#include "operator.h"
#include "indexer.h"
#include "listen.h"
#include "metrics.h"
#include "pickup.h"
#include "pool.h"
#include "sessions.h"
#include "privs.h"
#include "relay_notice.h"
#include "spool_log.h"

#define SHUTDOWN_GRACE_MS 10000

static void usage(FILE *out)
{
	fprintf(out, "usage: outboxd [-c FILE] [-t] [-v] [-V]\n"
		     "  -c FILE  configuration (default %s)\n"
		     "  -t       check the configuration and exit (0 valid, 78 invalid)\n"
		     "  -v       more logging (with -t: print the effective configuration)\n"
		     "  -V       print the version and exit\n", OUTBOX_DEFAULT_CONF);
}

/* sd_notify(0, msg) without libsystemd: one datagram to $NOTIFY_SOCKET. */
/* File descriptors: raise the soft limit to the hard one (as root
 * before dropping privileges, the hard limit too, up to 65536) and take
 * no more sessions than leave FD_RESERVE for the workers, the store and
 * the listeners: a session receiving a message holds its socket and a
 * queue file. */
#define FD_RESERVE 64
#define FD_PER_WORKER 4	/* socket, queue file, CA bundle, password command */
static size_t sessions_for_fds(const struct config *c)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return MAX_SESSIONS;
	if (geteuid() == 0 && rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 65536)
		rl.rlim_max = 65536;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	uint64_t workers = 0;
	for (size_t i = 0; i < c->nrelays; i++)
		workers += c->relays[i]->workers;
	uint64_t reserve = FD_RESERVE + FD_PER_WORKER * workers + CONTROL_FDS;
	uint64_t n = rl.rlim_cur > reserve ? (rl.rlim_cur - reserve) / 2 : 1;
	if (n < MAX_SESSIONS)
		log_warn("only %llu file descriptors: at most %llu submission sessions at once",
			 (unsigned long long)rl.rlim_cur, (unsigned long long)n);
	return n < MAX_SESSIONS ? (size_t)n : MAX_SESSIONS;
}

/* ---- SIGHUP ----
 * The files are read on the thread pool (the loop never touches the
 * disk), the new configuration applied on the loop.  One reload at a
 * time: a SIGHUP during one is kept, and read once it is done (the file
 * may have changed again after the first was read). */
struct reload {
	uv_work_t req;
	struct daemon *d;
	char *path;
	struct config *conf;	/* NULL: errors says why */
	struct buf errors;
};

static void reload_start(struct daemon *d);

static void reload_work(uv_work_t *req)
{
	struct reload *r = req->data;
	r->conf = config_load(r->path, 0, &r->errors);
}

/* Each error a line of its own, as `outboxd -t` prints them. */
static void reload_failed(const struct buf *errors)
{
	log_err("reload failed, keeping the running configuration:");
	for (const char *line = errors->data, *end; line && *line; line = end ? end + 1 : NULL) {
		end = strchr(line, '\n');
		log_err("reload: %.*s", (int)(end ? end - line : (ptrdiff_t)strlen(line)), line);
	}
}

static void reload_apply(struct daemon *d, struct config *c)
{
	if (strcmp(c->queue.spool, d->conf->queue.spool) != 0
	    || strcmp(c->listen.socket, d->conf->listen.socket) != 0
	    || strcmp(c->listen.tcp, d->conf->listen.tcp) != 0)
		log_notice("changes to spool, socket or tcp take effect at the next restart");
	config_unref(d->conf);
	d->conf = c;
	pool_reconfigure(d->pool, c);
	log_set_level(d->verbose ? LOG_LVL_DEBUG : (enum log_level)c->log.level);
	log_info("configuration reloaded from %s", d->conf_path);
	d->stats.reloads++;
	listeners_reloaded(d);
}

static void reload_done(uv_work_t *req, int status)
{
	struct reload *r = req->data;
	struct daemon *d = r->d;
	d->reloading = false;
	if (status < 0 || d->stopping) {	/* a stop came meanwhile: nothing to apply */
		if (r->conf)
			config_unref(r->conf);
	} else if (!r->conf) {
		reload_failed(&r->errors);
	} else {
		reload_apply(d, r->conf);
	}
	buf_free(&r->errors);
	free(r->path);
	free(r);
	if (d->reload_again && !d->stopping) {
		d->reload_again = false;
		reload_start(d);
		return;
	}
	if (!d->stopping)
		notify_systemd("READY=1");
}

static void reload_start(struct daemon *d)
{
	if (d->reloading) {
		d->reload_again = true;
		return;
	}
	struct reload *r = xcalloc(1, sizeof *r);
	r->req.data = r;
	r->d = d;
	r->path = xstrdup(d->conf_path);
	buf_init(&r->errors);
	int rc = uv_queue_work(d->loop, &r->req, reload_work, reload_done);
	if (rc < 0) {	/* (libuv refuses only a bad argument) */
		log_err("reload: %s", uv_strerror(rc));
		buf_free(&r->errors);
		free(r->path);
		free(r);
		return;
	}
	d->reloading = true;
	notify_reloading();
}

static void finish_stopping(struct daemon *d)
{
	uv_close((uv_handle_t *)&d->sig_term, NULL);
	uv_close((uv_handle_t *)&d->sig_int, NULL);
	uv_close((uv_handle_t *)&d->sig_hup, NULL);
	uv_close((uv_handle_t *)&d->sig_usr1, NULL);
	uv_close((uv_handle_t *)&d->grace, NULL);
	sched_close(&d->sched);
	metrics_file_stop(d);
	pool_close_handle(d->pool);
	indexer_close(d->indexer);
}

/* The scheduler's hooks (scheduler.h): the pool, the operator actions'
 * file half, the reports. */
static void sched_submit(void *arg, const char *id, unsigned tries, uint32_t next_try)
{
	struct daemon *d = arg;
	pool_submit(d->pool, id, tries, next_try);
}

static bool sched_cancel(void *arg, const char *id)
{
	struct daemon *d = arg;
	return pool_cancel(d->pool, id);
}

static size_t sched_workers(void *arg)
{
	struct daemon *d = arg;
	return pool_size(d->pool);
}

static void sched_flush_relays(void *arg)
{
	struct daemon *d = arg;
	pool_flush_relays(d->pool, -1);
}

static void sched_later(void *arg, qref r, enum sched_action a)
{
	op_later(arg, r, a);
}

static void sched_bounce(void *arg, qref r, bool warn)
{
	bounce_start(arg, r, warn);
}

/* The pool's hooks (pool.h). */
/* Its workers may take more. */
static void on_pool_ready(void *arg)
{
	struct daemon *d = arg;
	sched_dispatch(&d->sched);
}

/* The waiting mail is due (a relay's new login). */
static void on_pool_due(void *arg)
{
	struct daemon *d = arg;
	(void)sched_due_now(&d->sched);
}

/* A relay needs a new login: the postmaster is told. */
static void on_pool_login_notice(void *arg, const char *relay, const char *command, const char *why)
{
	struct daemon *d = arg;
	if (!d->stopping)
		relay_notice_send(&d->intake, relay, command, why);
}

/* The pool's or the indexer's part of a stop is done. */
static void on_part_stopped(void *arg)
{
	struct daemon *d = arg;
	d->part_stopped(d);
}

/* The indexer's walk is complete: the daemon is ready. */
static void on_indexed(void *arg)
{
	notify_ready(arg);
}

/* A worker's outcome: counted for outbox status, then to the scheduler. */
static void on_pool_result(void *arg, const struct delivery_result *r)
{
	struct daemon *d = arg;
	struct daemon_stats *st = &d->stats;
	spool_log_news(&d->store);	/* what the worker's fsyncs found */
	st->sent += r->sent;
	st->deferred += r->deferred;
	st->bounced += r->bounced;
	struct relay_stats *rs = NULL;
	for (size_t i = 0; *r->relay && i < st->nrelays && !rs; i++)
		if (strcmp(st->by_relay[i].relay, r->relay) == 0)
			rs = &st->by_relay[i];
	if (!rs && *r->relay && st->nrelays < STATS_RELAYS) {
		rs = &st->by_relay[st->nrelays++];
		snprintf(rs->relay, sizeof rs->relay, "%s", r->relay);
	}
	if (rs) {
		rs->sent += r->sent;
		rs->deferred += r->deferred;
		rs->bounced += r->bounced;
	}
	if (r->sent)
		metrics_observe_latency(d, r->delay, r->sent);
	if (*r->last_reply) {
		snprintf(st->last_reply, sizeof st->last_reply, "%s", r->last_reply);
		st->last_at = now_real();
	}
	sched_result(&d->sched, r);
}

/* d->part_stopped: a session, the pool, the indexer or the pickup
 * watcher is done; the daemon exits once all are. */
static void daemon_maybe_finish(struct daemon *d)
{
	if (d->stopping && d->nsessions == 0 && pool_stopped(d->pool) && indexer_stopped(d->indexer) && !indexer_busy(d->indexer)
	    && pickup_idle(d)
	    && !uv_is_closing((uv_handle_t *)&d->sig_term))
		finish_stopping(d);
}

static void on_grace_over(uv_timer_t *t)
{
	struct daemon *d = t->data;
	log_info("shutdown grace period over, closing %zu sessions", d->nsessions);
	sessions_shutdown(d, true);
	if (!pool_stopped(d->pool) || !indexer_stopped(d->indexer)) {
		/* a worker still waits on the upstream (its message stays
		 * queued and is tried again after the restart), or the
		 * indexer on the disk */
		log_warn("delivery still in progress after %d s; exiting anyway", SHUTDOWN_GRACE_MS / 1000);
		uv_stop(d->loop);
	}
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct daemon *d = h->data;
	if (signum == SIGHUP) {
		if (!d->stopping)
			reload_start(d);
		return;
	}
	if (signum == SIGUSR1) {	/* sendmail -q */
		size_t n = sched_flush_all(&d->sched);
		log_info("retry of all deferred mail asked for: %zu messages are due now", n);
		return;
	}
	if (d->stopping)
		return;
	log_info("%s received, stopping (%zu messages queued)", strsignal(signum), d->queue.count);
	d->stopping = true;
	sched_stop(&d->sched);
	notify_stop(d);
	listeners_stop(d);
	control_stop(d);
	sessions_shutdown(d, false);
	pickup_stop(d);
	bounce_stop(d);
	indexer_stop(d->indexer);
	pool_stop(d->pool);
	d->grace.data = d;
	uv_timer_start(&d->grace, on_grace_over, SHUTDOWN_GRACE_MS, 0);
	daemon_maybe_finish(d);
}

static void start_signals(struct daemon *d)
{
	uv_signal_t *h[] = { &d->sig_term, &d->sig_int, &d->sig_hup, &d->sig_usr1 };
	int sig[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
	for (int i = 0; i < 4; i++) {
		uv_signal_init(d->loop, h[i]);
		h[i]->data = d;
		uv_signal_start(h[i], on_signal, sig[i]);
	}
	uv_timer_init(d->loop, &d->grace);
	signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
	struct daemon d = { .part_stopped = daemon_maybe_finish, .stats.started = now_real() };
	const struct sched_hooks sched_hooks = { &d, sched_submit, sched_cancel, sched_workers,
						 sched_flush_relays, sched_later, sched_bounce };
	struct err e;
	int opt, check_only = 0;
	d.conf_path = OUTBOX_DEFAULT_CONF;
	while ((opt = getopt(argc, argv, "c:tvVh")) != -1) {
		switch (opt) {
		case 'c': d.conf_path = optarg; break;
		case 't': check_only = 1; break;
		case 'v': d.verbose++; break;
		case 'V': printf("outboxd %s\n", OUTBOX_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EX_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EX_USAGE;
	}
	struct buf errors;
	buf_init(&errors);
	d.conf = config_load(d.conf_path, 0, &errors);
	if (!d.conf) {
		fprintf(stderr, "outboxd: configuration error:\n%s\n", errors.data);
		buf_free(&errors);
		return EX_CONFIG;
	}
	buf_free(&errors);
	if (check_only) {
		if (d.verbose)
			config_dump(d.conf, stdout);
		config_free(d.conf);
		return 0;
	}
	umask(077);	/* files are private; where group or others may read, the mode is set exactly */
	log_open("outboxd", (enum log_target)d.conf->log.target,
		 d.verbose ? LOG_LVL_DEBUG : (enum log_level)d.conf->log.level);
	d.max_sessions = sessions_for_fds(d.conf);
	drop_privileges(d.conf);
	if (store_open(&d.store, d.conf->queue.spool, true, &e) < 0)
		fatal(EX_TEMPFAIL, "%s", e.msg);
	d.loop = uv_default_loop();
	d.tokens = token_cache_new(d.conf_path);
	char *login_dir = xasprintf("%s/rate", d.conf->queue.spool);	/* dead tokens across restarts */
	token_cache_set_state_dir(d.tokens, login_dir);
	free(login_dir);
	qindex_init(&d.queue);
	sched_init(&d.sched, d.loop, &d.queue, &sched_hooks);
	local_hostname(d.hostname, sizeof d.hostname);
	d.intake = (struct intake_ctx){ d.loop, &d.store, &d.conf, d.hostname, &d.queue, &d.sched,
					&d.stats.intake, false };
	spool_log_open(&d.store, store_clean_tmp(&d.store));
	d.control = control_new(&d);
	if (listeners_start(&d, &e) < 0)
		fatal(EX_UNAVAILABLE, "%s", e.msg);
	start_signals(&d);
	const struct pool_hooks pool_hooks = { &d, on_pool_result, on_pool_ready, on_pool_due,
						on_pool_login_notice, on_part_stopped };
	const struct pool_env pool_env = { d.loop, &d.store, d.tokens };
	if (pool_start(&d.pool, &pool_env, d.conf, &pool_hooks, &e) < 0)
		fatal(EX_OSERR, "%s", e.msg);
	pickup_recover(&d);	/* before the indexer can schedule what it checks */
	metrics_file_start(&d);
	const struct indexer_env indexer_env = { d.loop, &d.store, &d.queue, &d.sched, &d, on_indexed,
						  on_part_stopped };
	if (indexer_start(&d.indexer, &indexer_env, &e) < 0 || pickup_start(&d, &e) < 0)
		fatal(EX_OSERR, "%s", e.msg);
	log_info("outboxd %s started, indexing the queue", OUTBOX_VERSION);
	uv_run(d.loop, UV_RUN_DEFAULT);
	log_info("stopped, %zu messages in the queue", d.queue.count);
	if (!pool_stopped(d.pool) || !indexer_stopped(d.indexer) || indexer_busy(d.indexer) || !pickup_idle(&d)
	    || control_busy(d.control) || d.reloading)
		exit(0);	/* threads still busy: leave without tearing down under them */
	indexer_free(d.indexer);
	pickup_free(&d);
	pool_free(d.pool);
	d.pool = NULL;
	bounce_free(&d);
	uv_loop_close(d.loop);
	control_free(d.control);
	sched_free(&d.sched);
	qindex_free(&d.queue);
	store_close(&d.store);
	token_cache_free(d.tokens);
	config_unref(d.conf);
	return 0;
}
