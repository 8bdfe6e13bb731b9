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

#endif
