/*
 * smtp_pipe.h - the command queue of a client session (smtp_pipe.c):
 * the commands of mail transactions written to the upstream, each with
 * what its reply answers (struct smtp_expect), and the replies read back
 * in order, one at a time, each read and judged once (struct
 * smtp_answer: its code, its printable text, its verdict at the
 * command's stage, a provider's quota hold).
 *
 * The queue does not know what a command means to its caller: the
 * expectation's kind, ctx and arg are the caller's, handed back with the
 * reply.  With PIPELINING the caller queues ahead and reads later;
 * without it the caller reads each reply (smtp_pipe_read) before it
 * queues the next command.  What is queued is written when a reply is
 * read, on smtp_pipe_flush, or when it reaches SMTP_BODY_CHUNK.
 *
 * Invariants: replies are paired with commands strictly in order; once
 * the session is broken (a failure without a reply code, smtp_fail)
 * nothing more is written or read and every expectation is dropped.
 * Threads: used by one thread at a time.
 */
#ifndef OUTBOX_SMTP_PIPE_H
#define OUTBOX_SMTP_PIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "smtp_client.h"

#define SMTP_BODY_CHUNK (256 * 1024)	/* message octets read and written at a time */
#define SMTP_CMD_MAX 2048	/* one command line, CRLF included (RFC 5321 4.5.3.1.4 + extensions) */

/* What a queued command's reply will answer: the caller's. */
struct smtp_expect {
	int kind;
	enum smtp_stage st;	/* where it is judged (smtp_classify) */
	void *ctx;
	size_t arg;
	bool last;		/* a BDAT ... LAST */
};

/* One reply, read and judged once. */
struct smtp_answer {
	struct smtp_expect x;	/* the command it answers */
	int code;
	enum smtp_verdict v;	/* smtp_classify(x.st, code) */
	unsigned quota_hold;	/* smtp_quota_hold(code, line): 0 if not a quota reply */
	char line[SMTP_REPLY_SHOWN + 1];	/* the reply, whole and printable (smtp_reply_line) */
	bool all_in;		/* no other reply is awaited */
};

struct smtp_pipe {
	struct smtp_client *s;	/* the caller's */
	struct buf out;		/* queued octets not yet written */
	struct smtp_expect *q;
	size_t head, n, cap;	/* q[head .. head+n) await their replies (callers may
				 * read n, and q[head] while n > 0) */
	char *chunk;		/* SMTP_BODY_CHUNK octets read from a file */
	struct buf body;	/* encoded message octets (a BDAT chunk in the making) */
};

void smtp_pipe_init(struct smtp_pipe *p, struct smtp_client *s);
void smtp_pipe_free(struct smtp_pipe *p);
/* A new session: nothing queued, nothing awaited. */
void smtp_pipe_reset(struct smtp_pipe *p);
/* Is the session unusable (a failure without a reply code)? */
bool smtp_broken(const struct smtp_client *s);
/* Queue one command line (CRLF added) expecting x.  A line over
 * SMTP_CMD_MAX breaks the session (a local failure). */
void smtp_pipe_cmd(struct smtp_pipe *p, struct smtp_expect x, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Queue size octets of a message from fd at off: dot-stuffed and ended
 * with "." expecting x (chunked false), or as BDAT commands of about
 * SMTP_BODY_CHUNK octets each, every one expecting x (the LAST one with
 * x.last set).  Lines are kept within 998 octets either way; the number
 * of lines broken is returned.  The end stays queued, so what follows
 * goes in the same write. */
uint64_t smtp_pipe_message(struct smtp_pipe *p, int fd, off_t off, uint64_t size, bool chunked,
			   struct smtp_expect x);
/* Write what is queued. */
void smtp_pipe_flush(struct smtp_pipe *p);
/* Write what is queued and read the oldest awaited reply into *ans.
 * False when the session is broken (every expectation dropped). */
bool smtp_pipe_read(struct smtp_pipe *p, struct smtp_answer *ans);
/* Break the session over the answer: a local failure "what: reply";
 * every expectation is dropped. */
void smtp_pipe_break(struct smtp_pipe *p, const struct smtp_answer *ans, const char *what);

#endif
