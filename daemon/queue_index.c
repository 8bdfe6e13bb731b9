/*
 * queue_index.c - the daemon's in-memory index of queued messages.
 *
 * A hash table from queue ID to a small struct qentry (about 80 octets
 * with its chain pointer): the envelope stays on disk, so 100 000 queued
 * messages cost a few megabytes, and finding a message by ID never scans
 * the spool.  Loop thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "outboxd.h"

static uint64_t hash_id(const char *id)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */
	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 1099511628211ULL;
	return h;
}

void qindex_init(struct queue_index *q)
{
	q->nbuckets = 1024;
	q->buckets = xcalloc(q->nbuckets, sizeof *q->buckets);
	q->count = 0;
}

void qindex_free(struct queue_index *q)
{
	for (size_t i = 0; i < q->nbuckets; i++) {
		struct qentry *e = q->buckets[i], *next;
		for (; e; e = next) {
			next = e->hnext;
			free(e);
		}
	}
	free(q->buckets);
	q->buckets = NULL;
	q->nbuckets = q->count = 0;
}

static void grow(struct queue_index *q)
{
	size_t n = q->nbuckets * 2;
	struct qentry **b = xcalloc(n, sizeof *b);
	for (size_t i = 0; i < q->nbuckets; i++) {
		struct qentry *e = q->buckets[i], *next;
		for (; e; e = next) {
			next = e->hnext;
			size_t k = hash_id(e->id) & (n - 1);
			e->hnext = b[k];
			b[k] = e;
		}
	}
	free(q->buckets);
	q->buckets = b;
	q->nbuckets = n;
}

struct qentry *qindex_find(const struct queue_index *q, const char *id)
{
	struct qentry *e = q->buckets[hash_id(id) & (q->nbuckets - 1)];
	while (e && strcmp(e->id, id) != 0)
		e = e->hnext;
	return e;
}

struct qentry *qindex_add(struct queue_index *q, const char *id, const struct envelope *env,
			  uint64_t size)
{
	struct qentry *e = qindex_find(q, id);
	if (e)
		return e;
	if (q->count >= q->nbuckets)
		grow(q);
	e = xcalloc(1, sizeof *e);
	memcpy(e->id, id, QID_LEN);
	e->state = QE_READY;
	e->npending = (uint32_t)envelope_pending(env);
	e->size = size;
	e->arrival = env->arrival;
	size_t k = hash_id(id) & (q->nbuckets - 1);
	e->hnext = q->buckets[k];
	q->buckets[k] = e;
	q->count++;
	return e;
}

void qindex_remove(struct queue_index *q, struct qentry *e)
{
	struct qentry **pp = &q->buckets[hash_id(e->id) & (q->nbuckets - 1)];
	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = e->hnext;
		q->count--;
		free(e);
	}
}
