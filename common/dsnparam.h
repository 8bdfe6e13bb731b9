/*
 * dsnparam.h - the syntax of the DSN request (RFC 3461 section 4): the
 * xtext encoding, and the RET, ENVID (MAIL) and NOTIFY, ORCPT (RCPT)
 * parameters, as the SMTP listeners, the pickup directory, the sendmail
 * command and the queue record take and write them (dsnparam.c).
 *
 * Pure functions: no I/O, no logging, no allocation but the value a
 * *_param() function hands back.
 *
 * INVARIANT: a value these functions accept (an ENVID, an ORCPT, a
 * NOTIFY list) is printable US-ASCII without space (0x21..0x7e), so it
 * can stand in a queue file's line, a log line or an SMTP command as it
 * is; ENVID and ORCPT are kept as the xtext they arrived as (RFC 3461
 * 5.2: relayed unchanged), NOTIFY and RET are kept as the NOTIFY_* bits
 * and enum dsn_ret of queue.h.
 */
#ifndef OUTBOX_DSNPARAM_H
#define OUTBOX_DSNPARAM_H

#include <stdbool.h>
#include <stddef.h>

#include "queue.h"
#include "util.h"

/* RFC 3461 4.4 and 4.2: the whole parameter, keyword included, is at
 * most this long ("ENVID=" + 94, "ORCPT=" + 494 characters of value);
 * the value is counted as it is sent (xtext), not decoded. */
#define DSN_ENVID_MAX 100
#define DSN_ORCPT_MAX 500
#define DSN_ENVID_VALUE_MAX (DSN_ENVID_MAX - 6)
#define DSN_ORCPT_VALUE_MAX (DSN_ORCPT_MAX - 6)
/* addr-type of ORCPT (an atom; "rfc822", "utf-8", ...). */
#define DSN_ADDR_TYPE_MAX 32

/* xtext (RFC 3461 4): xchar is "!".."~" but "+" and "="; "+XX" (two
 * upper-case hex digits) any octet.  Well formed, and what it decodes
 * to is printable US-ASCII (graphic or space), as ENVID and ORCPT must
 * be (4.2, 4.4). */
bool xtext_valid(const char *p, size_t n);
/* Decode n octets of xtext onto out; -1 (out unchanged) if not valid. */
int xtext_decode(const char *p, size_t n, struct buf *out);
/* Encode n octets onto out ("+XX" for "+", "=" and what is not "!".."~"). */
void xtext_encode(const char *p, size_t n, struct buf *out);

/* NOTIFY=: "NEVER", or a list of SUCCESS, FAILURE, DELAY (each once,
 * keywords in any case); NOTIFY_* bits, 0 if malformed. */
unsigned dsn_notify_parse(const char *v);
/* The canonical form ("NEVER" or "SUCCESS,FAILURE,DELAY" in that
 * order); "" for 0.  Fits in DSN_NOTIFY_TEXT_MAX. */
#define DSN_NOTIFY_TEXT_MAX sizeof "SUCCESS,FAILURE,DELAY"
const char *dsn_notify_format(unsigned notify, char out[DSN_NOTIFY_TEXT_MAX]);
/* A NOTIFY_* combination outbox keeps (NEVER alone, or others). */
bool dsn_notify_valid(unsigned notify);
/* RET=: FULL or HDRS in any case; RET_UNSET if neither. */
enum dsn_ret dsn_ret_parse(const char *v);
/* "FULL", "HDRS", or "" for RET_UNSET. */
const char *dsn_ret_name(enum dsn_ret r);
/* ENVID=: xtext of at most DSN_ENVID_VALUE_MAX characters. */
bool dsn_envid_valid(const char *v);
/* ORCPT=: addr-type ";" xtext, at most DSN_ORCPT_VALUE_MAX characters;
 * addr-type letters, digits and "-" (the RFC's atom as registered). */
bool dsn_orcpt_valid(const char *v);

/* One ESMTP parameter ("KEYWORD=value") of MAIL or RCPT: not a DSN one
 * (the caller tries its others), taken into the result, or refused
 * (*why: "Bad NOTIFY parameter syntax", "Duplicate ENVID parameter"...;
 * RFC 3461 4: a syntax error, 501 5.5.4 on the wire). */
enum dsn_take { DSN_NOT_OURS, DSN_TAKEN, DSN_BAD };

struct dsn_mail_req {
	enum dsn_ret ret;	/* RET_UNSET when not given */
	char *envid;		/* as given (xtext), or NULL */
};
struct dsn_rcpt_req {
	unsigned notify;	/* 0 when not given */
	char *orcpt;		/* as given, or NULL */
};

enum dsn_take dsn_mail_param(const char *param, struct dsn_mail_req *m, const char **why);
enum dsn_take dsn_rcpt_param(const char *param, struct dsn_rcpt_req *r, const char **why);
void dsn_mail_req_free(struct dsn_mail_req *m);
void dsn_rcpt_req_free(struct dsn_rcpt_req *r);

#endif
