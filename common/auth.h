/*
 * auth.h - the relay secret and SASL mechanisms for AUTH.
 *
 * Owns: reading the secret from [relay] password_file or running
 * password_command (without a shell; its standard output, less the
 * final newline, is the password or OAuth2 access token), and building
 * the PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER responses.
 *
 * Invariant: secrets live only in memory returned by these functions
 * and are wiped (secret_free) after use; no message built here is ever
 * logged.
 */
#ifndef OUTBOX_AUTH_H
#define OUTBOX_AUTH_H

#include <stddef.h>

#include "config.h"
#include "util.h"

#define SASL_PLAIN 0x1
#define SASL_LOGIN 0x2
#define SASL_XOAUTH2 0x4
#define SASL_OAUTHBEARER 0x8

/* Mechanisms named in an EHLO "AUTH ..." line (as SASL_* bits). */
unsigned sasl_parse_offer(const char *mechs);
/* The mechanism to use for [relay] auth given what the server offers;
 * 0 when none fits. */
unsigned sasl_choose(int auth_mode, unsigned offered);
const char *sasl_name(unsigned mech);

/* The secret: NULL with e set on failure. */
char *secret_get(const struct relay *r, struct err *e);
/* secret_free (util.h) wipes and frees one. */
/* The first line of a secret's file (what: its key, for the error). */
char *secret_read_file(const char *path, const char *what, struct err *e);

/* Split a command line into argv: whitespace separates, '...' and "..."
 * quote, backslash escapes one character.  NULL on unbalanced quotes. */
char **split_command(const char *line);
void free_argv(char **argv);
/* Run argv without a shell; its stdout (at most 64 KiB, within
 * timeout_s) into *out.  -1 on failure or non-zero exit. */
int run_capture(char *const argv[], int timeout_s, char **out, struct err *e);

/* base64 of data into out (NUL-terminated). */
void base64_add(struct buf *out, const void *data, size_t n);
/* The initial client response for PLAIN, XOAUTH2 or OAUTHBEARER. */
void sasl_initial_response(unsigned mech, const char *user, const char *secret,
			   const char *host, int port, struct buf *out);

#endif
