/*
 * index.h - the daemon's in-memory index of queued messages.
 *
 * Owns: struct qentry, the little the daemon remembers of a queued
 * message (32 octets: ID, next try, tries, state, the submitting uid,
 * three links), the table that finds one by ID, and a chain per
 * submitting uid, so that what an ordinary user's request costs (outbox
 * queue, flush) follows the messages that user owns, not the queue's
 * size.  The envelope stays on disk until a worker takes the message,
 * so a million queued messages cost about 40 MB here.  Entries live in
 * one array and are named by a qref (their index, 0 for none); a qentry
 * pointer is good only until the next qindex_add (the array may move);
 * a freed entry's state is QE_FREE until it is used again.
 *
 * The uid of a message the start-up walk found is QUID_UNKNOWN until
 * the indexer has read it from the file (indexer.h); a message without
 * a local submitter (TCP) has QUID_NONE.  Loop thread only.
 */
#ifndef OUTBOXD_INDEX_H
#define OUTBOXD_INDEX_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

typedef uint32_t qref;

/* Where a message is: a ready lane, the deferred heap, a worker's hands
 * (and what an operator asked for when that attempt ends), or held. */
enum qstate { QE_READY, QE_DEFERRED, QE_ACTIVE, QE_HELD, QE_ACTIVE_HOLD, QE_ACTIVE_DELETE,
	      QE_BOUNCING /* a report about it is being queued (bounce.c) */ };
#define QE_NSTATES (QE_BOUNCING + 1)
#define QE_FREE 0xff	/* an entry on the free list */

#define QUID_UNKNOWN UINT32_MAX		/* not read from the file yet */
#define QUID_NONE (UINT32_MAX - 1)	/* no local submitter (TCP, unreadable) */

struct qentry {
	uint64_t id;		/* the queue ID's digits (qid_value) */
	uint32_t next_try;	/* wall-clock second of the next try, when deferred */
	uint32_t link;		/* ready lane: next qref; deferred: heap position;
				 * free: next free qref */
	uint32_t uid;		/* submitting user, or QUID_UNKNOWN / QUID_NONE */
	uint32_t unext, uprev;	/* the uid's chain (qindex_first_of) */
	uint16_t tries;		/* attempts so far */
	uint8_t state;		/* enum qstate */
	uint8_t frac;		/* next_try's fraction of a second, in 1/256 */
};

struct queue_index {
	struct qentry *ent;	/* ent[0] unused: qref 0 is "none" */
	uint32_t nent, cap;	/* entries in use or freed, and allocated */
	uint32_t free_head;	/* freed entries, chained through link */
	uint32_t *table;	/* open addressing (linear probing) of qrefs */
	uint32_t mask;		/* table size - 1 */
	size_t count;		/* messages in the index */
	size_t nstate[QE_NSTATES];	/* of those, by state (qindex_set_state) */
	struct uid_chain *uids;	/* open addressing by uid; never shrinks (one per user) */
	uint32_t uids_mask, nuids;
	struct queue_index *gone;	/* IDs removed while removals are tracked */
};

void qindex_init(struct queue_index *q);
void qindex_free(struct queue_index *q);
/* The entry of id, made (state QE_READY, no tries) when it is new:
 * *added tells which. */
qref qindex_add(struct queue_index *q, uint64_t id, bool *added);
qref qindex_find(const struct queue_index *q, uint64_t id);
static inline struct qentry *qindex_get(const struct queue_index *q, qref r)
{
	return &q->ent[r];
}
void qindex_remove(struct queue_index *q, qref r);
/* Every change of an entry's state goes through here, so that the
 * counts by state are kept, never recounted (O(1)). */
static inline void qindex_set_state(struct queue_index *q, qref r, uint8_t state)
{
	q->nstate[q->ent[r].state]--;
	q->nstate[state]++;
	q->ent[r].state = state;
}
/* Is r an entry in use?  (A walk of the array in steps, as a listing
 * resumed batch by batch: from 1 below qindex_end().) */
static inline bool qindex_live(const struct queue_index *q, qref r)
{
	return r > 0 && r < q->nent && q->ent[r].state != QE_FREE;
}
static inline qref qindex_end(const struct queue_index *q)
{
	return q->nent;
}
/* The entry in use after r (r 0: the first), 0 after the last; a walk
 * of the array, not of the table:
 *	for (qref r = qindex_next(q, 0); r; r = qindex_next(q, r)) */
static inline qref qindex_next(const struct queue_index *q, qref r)
{
	while (++r < q->nent)
		if (q->ent[r].state != QE_FREE)
			return r;
	return 0;
}

/* ---- counts, kept (qindex_set_state), never recounted: O(1) ---- */
static inline size_t qindex_count_by_state(const struct queue_index *q, enum qstate s)
{
	return q->nstate[s];
}
/* What status and metrics show: "in delivery" is a worker's or a
 * report's, whatever an operator asked for meanwhile. */
struct qcounts {
	size_t total, queued, deferred, active, held;
};
static inline struct qcounts qindex_counts(const struct queue_index *q)
{
	const size_t *n = q->nstate;
	return (struct qcounts){ .total = q->count, .queued = n[QE_READY], .deferred = n[QE_DEFERRED],
				 .active = n[QE_ACTIVE] + n[QE_ACTIVE_HOLD] + n[QE_ACTIVE_DELETE] + n[QE_BOUNCING],
				 .held = n[QE_HELD] };
}

/* ---- by submitting user ----
 * A new entry's uid is QUID_UNKNOWN; set_uid moves it to its user's
 * chain.  first_of/next_of walk one user's messages, newest first. */
void qindex_set_uid(struct queue_index *q, qref r, uint32_t uid);
qref qindex_first_of(const struct queue_index *q, uint32_t uid);
static inline qref qindex_next_of(const struct queue_index *q, qref r)
{
	return q->ent[r].unext;
}
size_t qindex_count_of(const struct queue_index *q, uint32_t uid);
/* The index's uid of a submitter's uid as the envelope has it (-1: none). */
static inline uint32_t quid_of(long uid)
{
	return uid < 0 || uid >= (long)QUID_NONE ? QUID_NONE : (uint32_t)uid;
}
/* While tracking is on, every removed ID is remembered, so that a walk
 * of the queue that began before a message was delivered does not bring
 * it back (the indexer turns it on for its walk); off forgets them. */
void qindex_track_removals(struct queue_index *q, bool on);
bool qindex_was_removed(const struct queue_index *q, uint64_t id);

#endif
