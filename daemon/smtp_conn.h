/*
 * smtp_conn.h - the SMTP server session as its three files share it
 * (not for other modules: they have sessions.h):
 *
 *   smtp_session.c   the connection: reading, the state machine, the
 *                    commit and the work on the thread pool, accepting
 *   smtp_commands.c  the commands and their parameters, and the
 *                    transaction they build (the envelope)
 *   smtp_conn.c      what both stand on: replies, the transaction
 *                    forgotten, the close and the end
 *
 * Loop thread only.
 */
#ifndef OUTBOXD_SMTP_CONN_H
#define OUTBOXD_SMTP_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../common/queue.h"
#include "../common/smtp.h"
#include "intake.h"
#include "stream_handle.h"

#define OUT_HIGH_WATER (64 * 1024)	/* replies waiting: ~2000 pipelined ones */

#define NO_ROOM "452 4.3.1 Error: insufficient system storage"

enum sess_state { S_CMD, S_DATA, S_COMMIT, S_CLOSING };

struct session {
	union stream_handle h;
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

	void (*resume)(struct session *s);	/* the reader, once written (smtp_session.c) */
};

/* Queue a reply line (CRLF added; a 4xx or 5xx counts as a bad
 * command); write what is queued; close (once no work is in flight). */
void sess_reply(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sess_flush(struct session *s);
void sess_close(struct session *s);

/* Forget the transaction (an intake begun is aborted); did the intake
 * fail for want of room (then noted)?; a login or HELO name fit for a
 * Received: line. */
void sess_tx_reset(struct session *s);
bool sess_no_room_after(struct session *s, const struct err *e);
bool sess_helo_name_ok(const char *h);

#endif
