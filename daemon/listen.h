/*
 * listen.h - the submission listeners (listen.c): the Unix socket and,
 * when configured, TCP.  Loop thread only.
 */
#ifndef OUTBOXD_LISTEN_H
#define OUTBOXD_LISTEN_H

struct daemon;
struct err;

int listeners_start(struct daemon *d, struct err *e);
void listeners_stop(struct daemon *d);
/* After a reload: warns again when a submission socket systemd passed
 * has a mode other than the new [listen] socket_mode (which then does
 * not apply).  No disk access: the mode is the one seen at start. */
void listeners_reloaded(struct daemon *d);

#endif
