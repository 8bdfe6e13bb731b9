/*
 * queue_index.c - the daemon's in-memory index of queued messages
 * (index.h).
 *
 * The entries are one array (grown by doubling, freed entries reused
 * through a free list); a table of qrefs with linear probing, at most
 * half full, finds an entry by ID; removal shifts the following run
 * back (no tombstones), so a lookup never walks more than the run its
 * ID hashes into.  Each entry is also on the doubly linked chain of
 * its submitting uid (head and count in a small table of uids, open
 * addressing, one slot per user ever seen), so a user's messages are
 * found without looking at anyone else's, and leave it in O(1).  Loop
 * thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "index.h"

#define INITIAL_TABLE 1024	/* slots; an empty queue costs 4 KB here */
#define INITIAL_UIDS 64

struct uid_chain {
	uint32_t uid;
	qref head;	/* 0: none (a slot is used once uid is set: count may be 0) */
	bool used;
	size_t count;
};

static uint32_t slot_of(const struct queue_index *q, uint64_t id)
{
	id ^= id >> 33;	/* the finalizer of MurmurHash3: IDs are mostly time */
	id *= 0xff51afd7ed558ccdULL;
	id ^= id >> 33;
	id *= 0xc4ceb9fe1a85ec53ULL;
	id ^= id >> 33;
	return (uint32_t)id & q->mask;
}

void qindex_init(struct queue_index *q)
{
	memset(q, 0, sizeof *q);
	q->mask = INITIAL_TABLE - 1;
	q->table = xcalloc(INITIAL_TABLE, sizeof *q->table);
	q->nent = 1;	/* ent[0] is "none" */
	q->uids_mask = INITIAL_UIDS - 1;
	q->uids = xcalloc(INITIAL_UIDS, sizeof *q->uids);
}

void qindex_free(struct queue_index *q)
{
	qindex_track_removals(q, false);
	free(q->ent);
	free(q->table);
	free(q->uids);
	memset(q, 0, sizeof *q);
}

static void put(struct queue_index *q, qref r)
{
	uint32_t i = slot_of(q, q->ent[r].id);
	while (q->table[i])
		i = (i + 1) & q->mask;
	q->table[i] = r;
}

static void grow_table(struct queue_index *q)
{
	uint32_t *old = q->table, n = q->mask + 1;
	q->mask = n * 2 - 1;
	q->table = xcalloc((size_t)n * 2, sizeof *q->table);
	for (uint32_t i = 0; i < n; i++)
		if (old[i])
			put(q, old[i]);
	free(old);
}

qref qindex_find(const struct queue_index *q, uint64_t id)
{
	for (uint32_t i = slot_of(q, id); q->table[i]; i = (i + 1) & q->mask)
		if (q->ent[q->table[i]].id == id)
			return q->table[i];
	return 0;
}

static qref new_entry(struct queue_index *q)
{
	if (q->free_head) {
		qref r = q->free_head;
		q->free_head = q->ent[r].link;
		return r;
	}
	if (q->nent >= q->cap) {
		q->cap = q->cap ? q->cap * 2 : 256;
		q->ent = xrealloc(q->ent, (size_t)q->cap * sizeof *q->ent);
	}
	return q->nent++;
}

/* ---- the chains by uid ---- */

static uint32_t uid_slot(uint32_t uid, uint32_t mask)
{
	return (uid * 0x9e3779b1u) & mask;
}

static struct uid_chain *chain_find(const struct queue_index *q, uint32_t uid)
{
	for (uint32_t i = uid_slot(uid, q->uids_mask);; i = (i + 1) & q->uids_mask) {
		if (!q->uids[i].used)
			return NULL;
		if (q->uids[i].uid == uid)
			return &q->uids[i];
	}
}

static struct uid_chain *chain_slot(struct uid_chain *t, uint32_t mask, uint32_t uid)
{
	uint32_t i = uid_slot(uid, mask);
	while (t[i].used && t[i].uid != uid)
		i = (i + 1) & mask;
	return &t[i];
}

static struct uid_chain *chain_of(struct queue_index *q, uint32_t uid)
{
	struct uid_chain *c = chain_find(q, uid);
	if (c)
		return c;
	if ((q->nuids + 1) * 2 > q->uids_mask + 1) {
		uint32_t n = q->uids_mask + 1;
		struct uid_chain *t = xcalloc((size_t)n * 2, sizeof *t);
		for (uint32_t i = 0; i < n; i++)
			if (q->uids[i].used)
				*chain_slot(t, n * 2 - 1, q->uids[i].uid) = q->uids[i];
		free(q->uids);
		q->uids = t;
		q->uids_mask = n * 2 - 1;
	}
	c = chain_slot(q->uids, q->uids_mask, uid);
	*c = (struct uid_chain){ .uid = uid, .used = true };
	q->nuids++;
	return c;
}

static void chain_unlink(struct queue_index *q, qref r)
{
	struct qentry *e = &q->ent[r];
	struct uid_chain *c = chain_find(q, e->uid);
	if (e->uprev)
		q->ent[e->uprev].unext = e->unext;
	else if (c)
		c->head = e->unext;
	if (e->unext)
		q->ent[e->unext].uprev = e->uprev;
	if (c)
		c->count--;
	e->unext = e->uprev = 0;
}

static void chain_link(struct queue_index *q, qref r, uint32_t uid)
{
	struct uid_chain *c = chain_of(q, uid);
	struct qentry *e = &q->ent[r];
	e->uid = uid;
	e->uprev = 0;
	e->unext = c->head;
	if (c->head)
		q->ent[c->head].uprev = r;
	c->head = r;
	c->count++;
}

void qindex_set_uid(struct queue_index *q, qref r, uint32_t uid)
{
	if (q->ent[r].uid == uid)
		return;
	chain_unlink(q, r);
	chain_link(q, r, uid);
}

qref qindex_first_of(const struct queue_index *q, uint32_t uid)
{
	const struct uid_chain *c = chain_find(q, uid);
	return c ? c->head : 0;
}

size_t qindex_count_of(const struct queue_index *q, uint32_t uid)
{
	const struct uid_chain *c = chain_find(q, uid);
	return c ? c->count : 0;
}

qref qindex_add(struct queue_index *q, uint64_t id, bool *added)
{
	qref r = qindex_find(q, id);
	*added = r == 0;
	if (r)
		return r;
	if ((q->count + 1) * 2 > (size_t)q->mask + 1)
		grow_table(q);
	r = new_entry(q);
	q->ent[r] = (struct qentry){ .id = id, .state = QE_READY };
	q->nstate[QE_READY]++;
	chain_link(q, r, QUID_UNKNOWN);
	put(q, r);
	q->count++;
	return r;
}

void qindex_track_removals(struct queue_index *q, bool on)
{
	if (on && !q->gone) {
		q->gone = xmalloc(sizeof *q->gone);
		qindex_init(q->gone);
	} else if (!on && q->gone) {
		qindex_free(q->gone);
		free(q->gone);
		q->gone = NULL;
	}
}

bool qindex_was_removed(const struct queue_index *q, uint64_t id)
{
	return q->gone && qindex_find(q->gone, id);
}

void qindex_remove(struct queue_index *q, qref r)
{
	if (q->gone) {
		bool added;
		(void)qindex_add(q->gone, q->ent[r].id, &added);
	}
	uint32_t i = slot_of(q, q->ent[r].id);
	while (q->table[i] && q->table[i] != r)
		i = (i + 1) & q->mask;
	if (!q->table[i])
		return;
	/* backward shift: move up each later entry of the run that may
	 * fill the hole (its home slot is not between the hole and it) */
	for (uint32_t j = i;;) {
		j = (j + 1) & q->mask;
		if (!q->table[j])
			break;
		uint32_t home = slot_of(q, q->ent[q->table[j]].id);
		if (((j - home) & q->mask) >= ((j - i) & q->mask)) {
			q->table[i] = q->table[j];
			i = j;
		}
	}
	q->table[i] = 0;
	chain_unlink(q, r);
	q->nstate[q->ent[r].state]--;
	q->ent[r].state = QE_FREE;
	q->ent[r].link = q->free_head;
	q->free_head = r;
	q->count--;
}
