/*
 * spool_log.h - the daemon's voice for the queue store.
 *
 * The store (common/queue.h) never logs: it returns what happened.  The
 * daemon says it here, in the words the store gives (a struct err each),
 * so that every line about the spool reads the same wherever it comes
 * from.  Any thread (the log is thread-safe).
 */
#ifndef OUTBOX_SPOOL_LOG_H
#define OUTBOX_SPOOL_LOG_H

#include "../common/queue.h"

/* After store_open: its warnings, and the partial messages
 * store_clean_tmp() removed (partial of them). */
void spool_log_open(const struct store *s, size_t partial);
/* The store's news (a directory's fsync failing, or working again). */
void spool_log_news(const struct store *s);
/* store_quarantine, logged: a queue file that cannot be read as one. */
void spool_quarantine(const struct store *s, const char *name, const char *why);

#endif
