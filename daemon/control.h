/*
 * control.h - the control socket ([listen] control, control.c): the
 * queue tools (outbox queue, show, flush, delete, hold, release,
 * status) ask outboxd over it.  Loop thread only.
 *
 * PROTOCOL: the client sends one line, "VERB [ARG...]\n", at most
 * CONTROL_LINE_MAX octets; outboxd answers with lines until it closes
 * the connection: "1 TEXT" for the client's standard output, "2 TEXT"
 * for its standard error, and last "exit N", the client's exit status.
 * VERBs: QUEUE [--json], SHOW ID, FLUSH [ID...], DELETE ID..., HOLD
 * ID..., RELEASE ID..., STATUS [--json], METRICS (metrics.h).
 */
#ifndef OUTBOXD_CONTROL_H
#define OUTBOXD_CONTROL_H

#include <uv.h>

#include "scheduler.h"

#define CONTROL_LINE_MAX 8192

struct daemon;

/* A connection is waiting on the control listener: take it. */
void control_accept(struct daemon *d, uv_stream_t *server);
/* Hook for the scheduler: an action that waited for an attempt's end. */
void control_later(struct daemon *d, qref r, enum sched_action a);

#endif
