/*
 * pickup.h - the pickup directory (pickup.c): files renamed into
 * SPOOL/pickup/new/ are queued, once each.  Loop thread only.
 */
#ifndef OUTBOXD_PICKUP_H
#define OUTBOXD_PICKUP_H

#include <stdbool.h>

struct daemon;
struct err;

/* At start, before the indexer and pickup_start: settle what a crash
 * left in pickup/taking/ (pickup_take.c TAKING): a file whose message
 * is queued is removed, any other goes back to pickup/new/. */
void pickup_recover(struct daemon *d);
/* Watch pickup/new/ and take what is there and what comes. */
int pickup_start(struct daemon *d, struct err *e);
/* Take nothing more (SIGTERM); files being read go back to new/ for the
 * next start. */
void pickup_stop(struct daemon *d);
/* No file is being taken. */
bool pickup_idle(const struct daemon *d);
void pickup_free(struct daemon *d);

#endif
