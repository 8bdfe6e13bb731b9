/*
 * bounce.h - reports of failed delivery (bounce.c): when recipients of
 * a message failed for good, a delivery status notification
 * (common/dsn.c) goes to its sender through the intake, in the
 * crash-safe order of queue.c BOUNCES.  Loop thread only.
 */
#ifndef OUTBOXD_BOUNCE_H
#define OUTBOXD_BOUNCE_H

#include "index.h"

struct daemon;

/* The scheduler's hook: r is QE_BOUNCING (its B recipients need a
 * report); sched_bounced() follows once the report is queued. */
void bounce_start(struct daemon *d, qref r, bool warn);
/* A stop: the reports waiting to go together are dropped (their
 * messages' .B names bring them back at the next start). */
void bounce_stop(struct daemon *d);
/* After the loop. */
void bounce_free(struct daemon *d);

#endif
