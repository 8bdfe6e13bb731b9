/*
 * smtp_client.h - the client side of SMTP towards the upstream, written
 * to read like the protocol: greeting, EHLO, STARTTLS, EHLO, AUTH; the
 * mail transactions themselves are driven by the delivery worker with
 * smtp_send() and smtp_read_reply().
 *
 * Owns: opening a session as [relay] says (tls = starttls | tls | none,
 * verification, AUTH only over TLS unless plaintext_auth), the EHLO
 * extensions, and the one place where a reply is classified as
 * success, temporary, permanent or a session error (smtp_classify).
 *
 * Invariants: with tls = starttls, nothing after EHLO is sent in clear:
 * a missing or failing STARTTLS ends the session; AUTH is never sent
 * before TLS unless tls = none and plaintext_auth = yes; every failure
 * to open a session (DNS, connect, TLS, AUTH, timeout) is temporary.
 */
#ifndef OUTBOX_SMTP_CLIENT_H
#define OUTBOX_SMTP_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "net.h"
#include "smtp.h"

#define EXT_PIPELINING 0x01
#define EXT_SIZE 0x02
#define EXT_8BITMIME 0x04
#define EXT_SMTPUTF8 0x08
#define EXT_STARTTLS 0x10
#define EXT_AUTH 0x20
#define EXT_CHUNKING 0x40
#define EXT_DSN 0x80

/* Where a failure happened; decides temporary or permanent. */
enum smtp_stage { ST_CONNECT, ST_GREETING, ST_EHLO, ST_STARTTLS, ST_TLS, ST_AUTH,
		  ST_MAIL, ST_RCPT, ST_DATA, ST_DOT, ST_LOCAL };

struct smtp_client {
	struct netconn net;
	struct buf *transcript;	/* when set: "S: " and "C: " lines of the dialogue (no secrets) */
	struct smtp_reply reply;	/* the last reply read */
	unsigned ext;
	uint64_t size_max;		/* from EHLO SIZE, 0 = no limit given */
	unsigned auth_offer;		/* SASL_* bits */
	const char *auth_used;		/* mechanism name, or NULL */
	char host[256];
	char relay[320];		/* "host[addr]:port" for logs */
	char helo[256];
	bool open;
	bool auth_failed;		/* the last session failed at AUTH */
	/* Where an OAuth2 access token comes from, for a relay with
	 * oauth2_token_url (oauth2/oauth2.c; NULL: such a relay fails at
	 * AUTH).  fresh: the last one was refused. */
	char *(*token)(void *arg, const struct relay *r, bool fresh, struct err *e);
	void *token_arg;
	/* the last failure */
	enum smtp_stage fail_stage;
	int fail_code;			/* reply code, 0 when there was none */
	char fail_text[SMTP_REPLY_SHOWN + 500];	/* the reply (smtp_reply_line) or the local reason */
	const char *fail_hint;		/* a refused AUTH: smtp_auth_hint() of it, also at the end
					 * of fail_text ("; what to do: ..."); else NULL */
};

void smtp_client_init(struct smtp_client *s);
/* Connect and get ready for MAIL; on failure the session is closed and
 * fail_* say why (always temporary).  A TLS handshake that failed from
 * mbedTLS 3.6.6's TLS 1.2 fault is tried once more on a new connection
 * with t's TLS 1.2 configuration, which t keeps (tls_compat.h). */
int smtp_open(struct smtp_client *s, const struct relay *r, struct tls_client *t);
/* Write raw protocol bytes. */
int smtp_send(struct smtp_client *s, const void *p, size_t n, enum smtp_stage st);
/* Read one reply into s->reply. */
int smtp_read_reply(struct smtp_client *s, enum smtp_stage st);
/* Record a failure (reply code 0 = local or network reason). */
int smtp_fail(struct smtp_client *s, enum smtp_stage st, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The last reply, whole, as smtp_reply_line() gives it. */
const char *smtp_last_reply(const struct smtp_client *s, char *out, size_t n);
void smtp_quit(struct smtp_client *s);
void smtp_close(struct smtp_client *s);
/* smtp_close() and free the reply buffer: the client is done. */
void smtp_client_free(struct smtp_client *s);

/*
 * The one classification of a reply code (0 = no reply: a network or
 * local reason) at a stage:
 *  V_OK       2xx (and 354 to DATA, 334 in AUTH, 220 to STARTTLS)
 *  V_TEMP     4xx; any failure before MAIL (DNS, connect, greeting,
 *             EHLO, TLS, AUTH); no reply at all
 *  V_PERM     5xx to MAIL, RCPT, DATA or the end of data; ST_LOCAL 5xx
 *  V_SESSION  the reply shows the session itself is unusable: 421, or a
 *             complaint about our own protocol (500, 501, 502, 503 to
 *             MAIL, RCPT, DATA, BDAT, RSET: a sequence or syntax error
 *             is ours, never the message's), or 530 there (RFC 4954 6:
 *             "5.7.0 Authentication required" -- a login or TLS the
 *             relay wants and we did not give: AUTH trouble never
 *             bounces mail).  The session is closed and the message
 *             deferred.
 * Only V_PERM ever bounces mail.
 */
enum smtp_verdict { V_OK, V_TEMP, V_PERM, V_SESSION };
enum smtp_verdict smtp_classify(enum smtp_stage st, int code);
/* Does a reply (its code and its text, "550 5.4.5 Daily ...") report a
 * provider's quota or rate limit?  The seconds to hold the relay back,
 * 0 if not.  Such a reply defers, whatever its code (the table is in
 * smtp_client.c and outbox.conf(5)). */
unsigned smtp_quota_hold(int code, const char *text);

/* What to do about a refused login, for a provider's reply that the
 * hint table (smtp_client.c, outbox.conf(5)) knows ("535 5.7.139 ...":
 * "switch to OAuth2: outbox setup microsoft365"), or NULL.  reply as
 * smtp_reply_line() gives it, or fail_text. */
const char *smtp_auth_hint(const char *reply);

#endif
