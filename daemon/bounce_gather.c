/*
 * bounce_gather.c - gathering the reports to one address (bounce_int.h):
 * the first report to an address goes at once; the ones that follow
 * within [queue] report_interval wait and go together as one summary
 * when it has passed (at most SUMMARY_MAX messages or SUMMARY_RCPTS
 * recipients in one): a cron job failing every minute makes a report
 * per interval, not one per run.  Final news (failures, relayed
 * notices) and delays are kept apart.
 *
 * Invariants: a member waits in at most one storm, in memory only (its
 * .B name is its durable record); a member that must go alone (an
 * ENVID, RET=FULL) never waits; a storm quiet for an interval is freed.
 * Loop thread.
 */
#include <stdlib.h>
#include <strings.h>

#include "../common/log.h"
#include "bounce_int.h"

#define SUMMARY_MAX 100		/* messages in one summary */
#define SUMMARY_RCPTS 1000	/* recipients in one summary */

/* The reports to one address (and kind) in the last report_interval. */
struct storm {
	struct storm *next;
	struct bounces *all;
	uv_timer_t timer;	/* report_interval after the last report */
	char *to;
	bool warn;
	struct member *head, **tail;	/* waiting for the summary */
	size_t n, nrcpt;
};

static void on_storm_closed(uv_handle_t *h)
{
	struct storm *st = h->data;
	free(st->to);
	free(st);
}

static void storm_unlink(struct storm *st)
{
	for (struct storm **p = &st->all->storms; *p; p = &(*p)->next)
		if (*p == st) {
			*p = st->next;
			break;
		}
}

/* The waiting members go as one report; the interval starts again. */
static void storm_flush(struct daemon *d, struct storm *st)
{
	struct member *list = st->head;
	st->head = NULL;
	st->tail = &st->head;
	st->n = st->nrcpt = 0;
	uv_timer_again(&st->timer);
	if (list)
		bounce_report_make(d, list, st->warn);
}

static void on_storm_timer(uv_timer_t *t)
{
	struct storm *st = t->data;
	struct daemon *d = st->all->d;
	if (st->head) {
		storm_flush(d, st);
		return;
	}
	storm_unlink(st);	/* quiet for an interval: the next report goes at once */
	uv_close((uv_handle_t *)&st->timer, on_storm_closed);
}

static struct storm *storm_find(struct bounces *b, const char *to, bool warn)
{
	for (struct storm *st = b->storms; st; st = st->next)
		if (st->warn == warn && strcasecmp(st->to, to) == 0)
			return st;
	return NULL;
}

static struct storm *storm_new(struct daemon *d, struct bounces *b, const char *to, bool warn, uint64_t interval)
{
	struct storm *st = xcalloc(1, sizeof *st);
	st->all = b;
	st->to = xstrdup(to);
	st->warn = warn;
	st->tail = &st->head;
	uv_timer_init(d->loop, &st->timer);
	uv_unref((uv_handle_t *)&st->timer);	/* a stop does not wait for it */
	st->timer.data = st;
	uv_timer_start(&st->timer, on_storm_timer, interval * 1000, interval * 1000);
	st->next = b->storms;
	b->storms = st;
	return st;
}

void bounce_gather(struct daemon *d, struct member *m)
{
	uint64_t interval = d->conf->queue.report_interval;
	struct bounces *b = bounces_of(d);
	struct storm *st = interval ? storm_find(b, m->to, m->warn) : NULL;
	m->next = NULL;
	if (!st || m->alone) {	/* the first report to this address in an interval goes now */
		if (interval && !st)
			storm_new(d, b, m->to, m->warn, interval);
		bounce_report_make(d, m, m->warn);
		return;
	}
	*st->tail = m;
	st->tail = &m->next;
	st->n++;
	st->nrcpt += m->nrcpt;
	if (st->n >= SUMMARY_MAX || st->nrcpt >= SUMMARY_RCPTS)
		storm_flush(d, st);
	else if (st->n == 1)
		log_info("%s: its report to <%s> waits up to %llu s, to go with others to that address", m->orig,
			 m->to, (unsigned long long)interval);
}

void bounce_gather_stop(struct daemon *d)
{
	struct bounces *b = d->bounces;
	while (b && b->storms) {
		struct storm *st = b->storms;
		b->storms = st->next;
		for (struct member *m = st->head, *next; m; m = next) {
			next = m->next;	/* its .B name brings it back at the next start */
			bounce_drop(m);
		}
		uv_close((uv_handle_t *)&st->timer, on_storm_closed);
	}
}
