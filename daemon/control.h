/*
 * control.h - the control socket ([listen] control): the queue tools
 * (outbox queue, show, flush, delete, hold, release, status, metrics)
 * ask outboxd over it.  Loop thread only.
 *
 * PROTOCOL: the client sends one line, "VERB [ARG...]\n", at most
 * CONTROL_LINE_MAX octets; outboxd answers with lines until it closes
 * the connection: "1 TEXT" for the client's standard output, "2 TEXT"
 * for its standard error, and last "exit N", the client's exit status.
 * VERBs: QUEUE [--json], SHOW ID, FLUSH [ID...], DELETE ID..., HOLD
 * ID..., RELEASE ID..., STATUS [--json], METRICS (metrics.h).  Control
 * characters in TEXT are sent escaped (\xNN): no message, client or
 * upstream string reaches the client's terminal raw.
 *
 * LIMITS (SPEC "Local users"): at most CONTROL_PER_UID connections of
 * one user and CONTROL_MAX in all (root and outboxd's own user have
 * CONTROL_ADMIN_EXTRA more), counted in the daemon's descriptor budget
 * (CONTROL_FDS); a connection over them is told so and closed at once.
 * The request line must come within CONTROL_IDLE_MS; the answer must be
 * read (no CONTROL_STALL_MS without progress while output waits) and
 * complete within CONTROL_DEADLINE_MS.  Output is written with libuv,
 * never waited for: at most about CONTROL_OUT_HIGH octets wait per
 * connection, and a listing is made in bounded batches only as the
 * client reads.  A stop closes every connection at once.
 */
#ifndef OUTBOXD_CONTROL_H
#define OUTBOXD_CONTROL_H

#include <stdbool.h>
#include <uv.h>

#include "scheduler.h"

#define CONTROL_LINE_MAX 8192
#define CONTROL_PER_UID 8
#define CONTROL_MAX 128
#define CONTROL_ADMIN_EXTRA 8
#define CONTROL_FDS (CONTROL_MAX + CONTROL_ADMIN_EXTRA + 8)	/* + the queue files being read */
#define CONTROL_IDLE_MS 5000
#define CONTROL_STALL_MS 30000
#define CONTROL_DEADLINE_MS (30 * 60 * 1000)
#define CONTROL_OUT_HIGH (256 * 1024)

struct daemon;
struct control;

struct control *control_new(struct daemon *d);
/* After the loop has ended. */
void control_free(struct control *srv);
/* A connection is waiting on the control listener: take it. */
void control_accept(struct daemon *d, uv_stream_t *server);
/* SIGTERM: every connection is closed now (a request is not waited for). */
void control_stop(struct daemon *d);
/* Does a work item of a request still run on the pool? */
bool control_busy(const struct control *srv);

#endif
