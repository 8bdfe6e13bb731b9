/*
 * sessions.h - the SMTP server sessions of the submission listeners
 * (smtp_session.c): one per accepted connection.  Loop thread only.
 */
#ifndef OUTBOXD_SESSIONS_H
#define OUTBOXD_SESSIONS_H

#include <stdbool.h>
#include <uv.h>

struct daemon;

/* A connection is waiting on server: take it (or refuse it, at the
 * session limits, with 421). */
void session_accept(struct daemon *d, uv_stream_t *server, bool is_unix);
/* Close sessions with 421: those between commands now; with force also
 * those still receiving a message (a commit in flight always finishes). */
void sessions_shutdown(struct daemon *d, bool force);

#endif
