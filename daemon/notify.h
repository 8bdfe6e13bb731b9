/*
 * notify.h - telling systemd how outboxd is (sd_notify(3), the
 * documented datagram to $NOTIFY_SOCKET; nothing when it is unset, so
 * outboxd runs the same without systemd): READY=1 once the sockets
 * listen and the start-up walk has loaded the queue, RELOADING=1 and
 * READY=1 around a SIGHUP, STOPPING=1, and a STATUS= line with the
 * queue's counts (at READY, then every NOTIFY_STATUS_S).  Loop thread.
 */
#ifndef OUTBOXD_NOTIFY_H
#define OUTBOXD_NOTIFY_H

struct daemon;

#define NOTIFY_STATUS_S 15

void notify_systemd(const char *msg);
/* READY=1 with the first STATUS=, and the STATUS= timer (the walk is done). */
void notify_ready(struct daemon *d);
void notify_reloading(void);
void notify_stop(struct daemon *d);

#endif
