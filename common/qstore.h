/*
 * qstore.h - the queue store's private parts, shared by its files (not
 * for the store's users: they have queue.h).
 *
 * The store is one module in several files, each owning one concern:
 *   store.c       the spool's layout, the lock, open and close
 *   qid.c         queue IDs and their generator
 *   qname.c       the names of queue files
 *   qrecord.c     the envelope and the queue file's header (the format)
 *   dirsync.c     directory fsyncs: group commit, sticky failures, the
 *                 spares' bookkeeping, the buckets made at start
 *   qwriter.c     writing and committing a message (COMMIT PROTOCOL)
 *   spares.c      finished files kept for reuse (SPARE FILES), removal
 *   qload.c       reading a queued message, status marks, retry names
 *   qops.c        durable renames and deletion, quarantine
 *   qdefer.c      the side files in defer/ (replies, warned, report)
 *   spool_walk.c  the start-up walk, tmp/'s clean-up, the flat layout's
 *                 upgrade
 * None of them logs: each returns what happened and the daemon or the
 * tool says it.
 */
#ifndef OUTBOX_QSTORE_H
#define OUTBOX_QSTORE_H

#include <stdbool.h>
#include <stdint.h>

#include "queue.h"

#define WRITE_CHUNK (64 * 1024)
#define SPARE_SIZE_MAX (64 * 1024)	/* larger files are unlinked, not kept */
#define SPARE_PREFIX "spare."
#define SLOT_QUEUE QBUCKETS	/* dirsync's slot of queue/ itself */

/* qrecord.c: the fixed-width flags line; a valid status character. */
void qrec_encode_flags(unsigned flags, struct buf *out);
bool qrec_status_valid(char c);

/* dirsync.c */
struct dirsync *dirsync_new(const char *queue_dir, int qfd);
void dirsync_free(struct dirsync *ds);
/* Make every bucket that is missing and open all (store_open, daemon);
 * *nwarn buckets could not be made (the first one's error in *warn). */
int dirsync_adopt_buckets(struct dirsync *ds, struct err *warn, unsigned *nwarn, struct err *e);
/* Seed s's ID generator past the last change of each directory. */
void dirsync_seed_ids(const struct dirsync *ds, struct store *s);
/* Count a name made in or taken out of slot's directory; its number. */
uint64_t dirsync_renamed(struct dirsync *ds, unsigned slot);
/* Wait until rename n of the slot is durable; -1 with errno when it may
 * not be. */
int dirsync_wait(struct dirsync *ds, unsigned slot, uint64_t n);
/* Step 3 of the commit: the bucket exists and its name is durable. */
int dirsync_bucket_ready(struct dirsync *ds, unsigned b, struct err *e);
/* Spares (spares.c SPARE FILES): reserve a slot for a new one (its
 * index, or -1 when all are taken), note its rename out of bucket b
 * done (ok) or failed, take one that is safe to rewrite. */
int spare_reserve(struct dirsync *ds, unsigned *name);
void spare_renamed(struct dirsync *ds, int i, unsigned b, bool ok);
bool spare_take(struct dirsync *ds, unsigned *name);

/* spares.c: step 1 on a spare file when one is safe to rewrite: an fd
 * open for writing and *path (free it), or -1 when there is none. */
int spare_open(const struct store *s, char **path);

/* qload.c: queue/XX/NAME (free it); the file of id under another name
 * in its bucket (its name changed since the caller learnt it). */
char *store_msg_path(const struct store *s, const char *name);
bool store_find_in_bucket(const struct store *s, const char *id, char name[QNAME_MAX]);

/* qdefer.c: remove message name's side files. */
void qdefer_forget(const struct store *s, const char *name);

/* qops.c: store_quarantine for the file dir/name; said starts with
 * label. */
int store_quarantine_at(const struct store *s, const char *dir, const char *name, const char *label,
			const char *why, struct err *said);

#endif
