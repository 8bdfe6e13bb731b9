/*
 * tool.h - the outbox command-line tool: shared pieces of its
 * subcommands (configuration lookup, submission over the daemon's Unix
 * socket).
 */
#ifndef OUTBOX_TOOL_H
#define OUTBOX_TOOL_H

#include <stdbool.h>

#include "../common/config.h"
#include "../common/queue.h"

/* Configuration from -C, else $OUTBOX_CONF, else the default path (which
 * may be missing: then defaults apply), each file under the trust rule
 * (common/conftrust.h); set-group-ID, the default one read with the
 * group.  Exits 78 on a bad file.  (toolconf.c) */
struct config *tool_config(const char *path);
/* Run as root, become c's [queue] user for good (common/become.h), so
 * that what follows reads and writes the daemon's files as outboxd
 * does: outbox probe and outbox oauth2 call it once the configuration
 * is read.  Exits 78 (no such user) or 71.  Nothing when not root. */
void tool_become_daemon_user(const struct config *c, const char *prog);
/* A helper's (outbox-probe, outbox-oauth2) leading "-C FILE", as outbox
 * passes it: the index of the first other argument. */
int tool_helper_args(int argc, char **argv, const char **conf);
/* The other side: the argument vector for helper path, "-C conf" when
 * conf is set, then argv[from..argc); free() it (the strings are the
 * caller's). */
char **tool_helper_argv(char *path, const char *conf, int argc, char **argv, int from);
/* outbox setup PROVIDER ADDRESS [options] (setup.c). */
int setup_main(int argc, char **argv, const char *conf);
/* outbox send ARGS (send.c). */
int send_main(int argc, char **argv, const char *conf);
/* A stream connection to outboxd's Unix socket at path, every read and
 * write with a timeout of timeout_s, SIGPIPE ignored; -1 with errno
 * (ENAMETOOLONG for a path too long).  (toolconf.c) */
int tool_connect(const char *path, int timeout_s);
/* First thing in main: run set-group-ID by a user who is not root, put
 * the group away and clear the environment (so $OUTBOX_CONF is gone
 * too); tool_config refuses -C then. */
void tool_drop_group(void);
/* Take the set-group-ID group up (on) or put it away again: for the
 * pickup write only.  0 on success (and when not set-group-ID). */
int tool_group(bool on);

/* What to submit. */
struct submission {
	const char *sender;		/* "" for <> */
	const char *const *rcpt;
	size_t nrcpt;
	const char *msg;		/* CRLF line endings, not dot-stuffed */
	size_t len;
	bool eight_bit;
	bool smtputf8;
	bool verbose;			/* show the SMTP dialogue on stderr */
	enum dsn_ret ret;		/* the DSN request (RFC 3461): RET, */
	const char *envid;		/* ENVID as xtext (or NULL), */
	unsigned notify;		/* NOTIFY_* of every recipient (or 0) */
	bool unreachable;		/* out: outboxd is not running (no socket file, or nobody
					   listening on it): the pickup fallback's case */
};

/*
 * Submit over the socket.  Returns a sysexits code: 0 once the daemon
 * replied 250 to the end of data (the message is durable), else the
 * code that fits, with a one-line reason in why.  On success the queue
 * ID is copied into id.
 */
int submit_smtp(const struct config *c, struct submission *s, char id[QID_LEN + 1],
		char *why, size_t why_len);

/* " RET=... ENVID=..." of s (what was given), appended to out: on
 * MAIL, and on pickup's X-Sender: line. (submit.c) */
void submission_dsn_mail(const struct submission *s, struct buf *out);

/* The fallback when outboxd is not running: the message goes into
 * SPOOL/pickup/new/ (tmp/, fsync, rename, fsync of new/) with its
 * envelope in X-Sender:/X-Receiver: lines, for outboxd to take when it
 * runs (pickup.c).  0, or a sysexits code with why. (pickup.c) */
int pickup_write(const struct config *c, const struct submission *s, char *name, size_t name_len,
		 char *why, size_t why_len);

/* sendmail -bs: an SMTP session on in/out, relayed to the daemon's
 * socket as it is (the daemon sees this process's uid, as for any
 * submission); 0 when it ended. */
int submit_session(const struct config *c, int in, int out, char *why, size_t why_len);

int sendmail_main(int argc, char **argv, const char *conf_path);
/* The rest of sendmail once the message (raw, LF or CRLF) is read: the
 * envelope settled and checked, From:, Date:, Message-ID: added when
 * missing, submitted (or left in pickup/ when outboxd is down); a
 * sysexits code.  `outbox send` uses it too. */
struct sendmail_opts;
int sendmail_message(const struct config *cf, struct sendmail_opts *o, const char *raw, size_t rawlen);


/* The queue tools over outboxd's control socket (control.c): send the
 * request VERB [--json] ARG... and pass the answer on; the exit status
 * is the daemon's (69 when it is not running; for STATUS 1). */
int control_request(const struct config *c, const char *verb, int argc, char **argv, bool json);
/* outbox queue|mailq|show|flush|delete|hold|release|status ARGS. */
/* How many times the running outboxd reloaded its configuration
 * (outbox status --json); -1 when it does not answer. */
long control_reloads(const struct config *c);
int control_main(const char *cmd, int argc, char **argv, const char *conf);

#endif
