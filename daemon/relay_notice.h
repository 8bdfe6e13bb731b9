/*
 * relay_notice.h - the postmaster's notice that a relay needs a new
 * OAuth2 login (SPEC "OAuth2"): one short text message from
 * MAILER-DAEMON, the null sender, to [address] postmaster, else root
 * (through [aliases]), queued through the intake like a report
 * (relay_notice.c).  The pool decides when (once per failure, upstreams.c
 * login_needed_locked); this only makes and queues it.  Loop thread.
 */
#ifndef OUTBOXD_RELAY_NOTICE_H
#define OUTBOXD_RELAY_NOTICE_H

struct intake_ctx;

/* relay: its label; command: what to run; why: the endpoint's answer.
 * (The daemon does not ask while it stops.) */
void relay_notice_send(struct intake_ctx *ic, const char *relay, const char *command, const char *why);

#endif
