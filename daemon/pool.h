/*
 * pool.h - the delivery worker pool (delivery.c), as the rest of the
 * daemon sees it: start it, hand it a message, stop it.  Its insides
 * (jobs, workers, attempts, transfers) are delivery.h, private to the
 * pool's files.  Loop thread only, but for what delivery.h says.
 */
#ifndef OUTBOXD_POOL_H
#define OUTBOXD_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct daemon;
struct err;

int pool_start(struct daemon *d, struct err *e);
/* The number of worker threads (fixed at start). */
size_t pool_size(const struct daemon *d);
/* Hand one message to the workers: its ID, and the tries and next try
 * its file's name says (qname_format). */
void pool_submit(struct daemon *d, const char *id, unsigned tries, uint32_t next_try);
/* Workers finish the message in hand and exit; daemon_maybe_finish()
 * runs when the last one has. */
void pool_stop(struct daemon *d);
bool pool_stopped(const struct daemon *d);
void pool_free(struct daemon *d);
void pool_close_handle(struct daemon *d);

#endif
