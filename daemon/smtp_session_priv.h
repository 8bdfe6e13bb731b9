/*
 * smtp_session_priv.h - the SMTP server session's parts shared by its two
 * files (not for other modules: they have sessions.h).
 *
 *   smtp_session.c   the connection: reading, writing, the state
 *                    machine, the commit and the work on the thread
 *                    pool, accepting and closing
 *   smtp_commands.c  the commands and their parameters, and the
 *                    transaction they build (the envelope)
 *
 * Loop thread only.
 */
#ifndef OUTBOXD_SMTP_SESSION_PRIV_H
#define OUTBOXD_SMTP_SESSION_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../common/queue.h"
#include "../common/smtp.h"
#include "intake.h"

#define NO_ROOM "452 4.3.1 Error: insufficient system storage"

enum sess_state { S_CMD, S_DATA, S_COMMIT, S_CLOSING };

struct session {
	union {
		uv_pipe_t pipe;
		uv_tcp_t tcp;
		uv_stream_t stream;
		uv_handle_t handle;
	} h;
	uv_timer_t idle;
	struct daemon *d;
	struct session *prev, *next;
	enum sess_state state;
	int open_handles;
	bool is_unix;
	bool reading;
	bool committing;	/* a commit is on the thread pool */
	bool flushing;		/* message octets are being written on the thread pool */
	int works;		/* thread-pool work in flight: the session waits for it */
	bool looking_up;	/* the login name is being looked up: DATA waits */
	uv_work_t lookup_req;
	char login[64];		/* the uid's login name, once looked up ("" if none) */
	bool discard_line;	/* skipping the rest of an over-long command */
	long uid;		/* SO_PEERCRED uid, -1 over TCP */
	char peer[80];		/* for logs: "uid 1000" or "[127.0.0.1]:4455" */
	char helo[256];		/* "" until EHLO/HELO */
	bool esmtp;
	int bad_commands;
	struct buf in, out, scratch;

	/* the transaction */
	bool in_tx;
	struct envelope env;
	bool smtputf8;
	uint64_t declared_size;
	struct data_reader dr;
	struct intake intake;	/* the message on its way into the queue */
	bool writing;		/* intake begun, not committed or aborted */
	uint64_t data_bytes;
	bool too_big;
};

/* smtp_session.c: queue a reply line (CRLF added; a 4xx or 5xx counts
 * as a bad command); write what is queued; close (once no work is in
 * flight). */
void sess_reply(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sess_flush(struct session *s);
void sess_close(struct session *s);

/* smtp_commands.c: run one command line; forget the transaction (an
 * intake begun is aborted); a login or HELO name fit for a Received:
 * line; did the intake fail for want of room (then noted)? */
void sess_dispatch(struct session *s, char *line);
void sess_tx_reset(struct session *s);
bool sess_helo_name_ok(const char *h);
bool sess_no_room_after(struct session *s, const struct err *e);

#endif
