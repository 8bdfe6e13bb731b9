/*
 * indexer.h - the start-up index of the queue, built while the daemon
 * already takes and delivers new mail.
 *
 * A thread walks the spool by name (store_walk: no queue file is
 * opened) and hands the messages it finds to the loop in batches; the
 * loop adds each to the index and the scheduler.  New mail committed
 * meanwhile is in the index already (an ID found twice is added once),
 * and a message delivered and removed meanwhile is remembered until the
 * walk ends, so a late find does not bring it back.  The log says when
 * the index is complete.
 */
#ifndef OUTBOXD_INDEXER_H
#define OUTBOXD_INDEXER_H

#include <stdbool.h>
#include <stdint.h>

struct daemon;
struct err;

int indexer_start(struct daemon *d, struct err *e);
/* Is a batch of the owners' read (after the walk) on the thread pool? */
bool indexer_busy(const struct daemon *d);
/* Is the walk still going? */
bool indexer_running(const struct daemon *d);
/* The message id left the index (loop thread). */
/* Stop the walk (SIGTERM): the thread ends after its current entry. */
void indexer_stop(struct daemon *d);
/* After indexer_stop: has the thread ended? */
bool indexer_stopped(const struct daemon *d);
/* Close the loop handle; free everything once the thread has ended. */
void indexer_close(struct daemon *d);
void indexer_free(struct daemon *d);

#endif
