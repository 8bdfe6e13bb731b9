/*
 * queue_index.c - the daemon's in-memory index of queued messages
 * (index.h).
 *
 * The entries are one array (grown by doubling, freed entries reused
 * through a free list); a table of qrefs with linear probing, at most
 * half full, finds an entry by ID; removal shifts the following run
 * back (no tombstones), so a lookup never walks more than the run its
 * ID hashes into.  Loop thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "index.h"

#define INITIAL_TABLE 1024	/* slots; an empty queue costs 4 KB here */

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
}

void qindex_free(struct queue_index *q)
{
	qindex_track_removals(q, false);
	free(q->ent);
	free(q->table);
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
	q->ent[r].link = q->free_head;
	q->free_head = r;
	q->count--;
}
