/*
 * metrics.h - outboxd's counters in the Prometheus text exposition
 * format (metrics.c): for `outbox metrics` over the control socket, and
 * rewritten every METRICS_EVERY_S into [log] metrics_file for node
 * exporter's textfile collector.  Loop thread only.
 */
#ifndef OUTBOXD_METRICS_H
#define OUTBOXD_METRICS_H

#include "../common/util.h"

#define METRICS_EVERY_S 15

struct daemon;

/* The whole exposition, appended to out. */
void metrics_render(struct daemon *d, struct buf *out);
/* A sent recipient's delay since its message arrived. */
void metrics_observe_latency(struct daemon *d, double seconds, unsigned count);
/* [log] metrics_file: written at once, then every METRICS_EVERY_S. */
void metrics_file_start(struct daemon *d);
void metrics_file_stop(struct daemon *d);

#endif
