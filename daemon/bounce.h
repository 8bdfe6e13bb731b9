/*
 * bounce.h - reports to a message's sender (bounce.c, bounce_gather.c,
 * bounce_report.c): when recipients failed for good, when a relay
 * without DSN took a recipient whose NOTIFY has SUCCESS, or when the
 * message is late ([queue] delay_warning), a delivery status
 * notification (common/dsn.c) goes to its sender through the intake,
 * in the crash-safe order of qrecord.c BOUNCES.  Loop thread only.
 */
#ifndef OUTBOXD_BOUNCE_H
#define OUTBOXD_BOUNCE_H

#include "index.h"

struct daemon;

/* The scheduler's hook: r is QE_BOUNCING (its B and R recipients need
 * a report, or, warn, it is late); sched_bounced() follows once the
 * report is queued. */
void bounce_start(struct daemon *d, qref r, bool warn);
/* A stop: the reports waiting to go together are dropped (their
 * messages' .B names bring them back at the next start). */
void bounce_stop(struct daemon *d);
/* After the loop. */
void bounce_free(struct daemon *d);

#endif
