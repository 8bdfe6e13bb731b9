/*
 * pickup.h - the pickup directory (pickup.c): files renamed into
 * SPOOL/pickup/new/ are queued, once each.  Loop thread only.
 */
#ifndef OUTBOXD_PICKUP_H
#define OUTBOXD_PICKUP_H

#include <stdbool.h>

struct daemon;
struct err;

/* At start, before the indexer: remove the pickup files whose message
 * was queued before a crash took the daemon between the commit and the
 * removal. */
void pickup_recover(struct daemon *d);
/* Watch pickup/new/ and take what is there and what comes. */
int pickup_start(struct daemon *d, struct err *e);
/* Take nothing more (SIGTERM); files being read stay for the next start. */
void pickup_stop(struct daemon *d);
/* No file is being taken. */
bool pickup_idle(const struct daemon *d);
void pickup_free(struct daemon *d);

#endif
