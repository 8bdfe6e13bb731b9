/*
 * send_args.h - the arguments of `outbox send` (SPEC "Composing"), one
 * parser for both programs that read them: outbox (the envelope, the
 * submission) and outbox-compose (the message).  Pure: no I/O.
 *
 *   outbox send [-s SUBJECT] [-m FILE] [-a FILE]... [-i FILE]...
 *               [-c ADDR]... [-b ADDR]... [-f FROM] [-v] [--dry-run] RCPT...
 *
 * Options and recipients may be mixed; "--" ends the options.
 */
#ifndef OUTBOX_SEND_ARGS_H
#define OUTBOX_SEND_ARGS_H

#include <stdbool.h>

struct send_opts {
	const char *subject;	/* NULL: none */
	const char *body_file;	/* -m; NULL: stdin */
	const char *from;	/* -f; NULL: the user's address ([senders]) */
	const char **attach;	/* -a, in order */
	int nattach;
	const char **inline_img;	/* -i: shown inside an HTML alternative */
	int ninline;
	const char **to, **cc, **bcc;
	int nto, ncc, nbcc;
	bool dry_run;		/* print the message, send nothing */
	bool verbose;
};

/* Parse argv[1..argc) (argv[0] is "send"); the arrays point into argv
 * and are freed with send_opts_free, whatever this returns.  0, or 64
 * with *what the problem and *arg the argument (or NULL). */
int send_parse_args(int argc, char **argv, struct send_opts *o, const char **what, const char **arg);
void send_opts_free(struct send_opts *o);

#endif
