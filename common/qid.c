/*
 * qid.c - queue IDs (queue.h): their form, the generator, the IDs of
 * reports, and the bucket an ID lives in.
 *
 * A queue ID is 16 upper-case hex digits, a 64-bit number: 8 of the
 * arrival second, 5 of the microsecond, 3 of a sequence.  IDs sort by
 * arrival.
 *
 * UNIQUE: store_new_id() never returns the same ID twice to one store,
 * from any thread: each is greater than the last (an atomic
 * compare-and-swap; when the clock has not moved on, or went back, the
 * last plus one).  Across restarts: the daemon's store_open() seeds the
 * generator past the last change of any queue bucket (qid_seed), which
 * is after every commit of the runs before, so a new ID is none of a
 * queued message's even when the clock went back while outboxd was
 * down.  A report's ID (qid_bounce) starts with F, which no arrival
 * second does before 2097, so the two never meet.
 */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "queue.h"

static uint64_t qid_of_time(uint64_t sec, uint64_t usec)
{
	return (sec & 0xFFFFFFFFULL) << 32 | (usec & 0xFFFFFULL) << 12;
}

void store_new_id(struct store *s, char id[QID_LEN + 1])
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	uint64_t now = qid_of_time((uint64_t)tv.tv_sec, (uint64_t)tv.tv_usec), v;
	uint64_t last = __atomic_load_n(&s->last_id, __ATOMIC_RELAXED);
	do
		v = now > last ? now : last + 1;
	while (!__atomic_compare_exchange_n(&s->last_id, &last, v, false, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED));
	qid_format(v, id);
}

/* A file system's time stamps come from a coarse clock, up to a tick
 * behind the one IDs are made from: the seed is 10 ms past the stamp. */
void qid_seed(struct store *s, const struct timespec *changed)
{
	uint64_t usec = (uint64_t)changed->tv_nsec / 1000 + 10000;
	uint64_t v = qid_of_time((uint64_t)changed->tv_sec + usec / 1000000, usec % 1000000);
	uint64_t last = __atomic_load_n(&s->last_id, __ATOMIC_RELAXED);
	while (v > last && !__atomic_compare_exchange_n(&s->last_id, &last, v, false,
							 __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

bool qid_valid(const char *id)
{
	return strlen(id) == QID_LEN && strspn(id, "0123456789ABCDEF") == QID_LEN;
}

uint64_t qid_value(const char *id)
{
	uint64_t v = 0;
	for (int i = 0; i < QID_LEN; i++)
		v = v << 4 | (uint64_t)(id[i] <= '9' ? id[i] - '0' : id[i] - 'A' + 10);
	return v;
}

/* A report's ID: 'F' (no arrival second starts so before 2097), then
 * 60 bits of a hash of the message's ID and tries, so the same report
 * has the same ID however often it is made. */
void qid_bounce(const char *orig, unsigned tries, char id[QID_LEN + 1])
{
	uint64_t h = 14695981039346656037ULL;
	char key[QID_LEN + 16];
	int n = snprintf(key, sizeof key, "%.*s/%u", QID_LEN, orig, tries);
	for (int i = 0; i < n; i++)
		h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
	qid_format(0xF000000000000000ULL | (h & 0x0FFFFFFFFFFFFFFFULL), id);
}

bool qid_is_bounce(uint64_t id)
{
	return id >> 60 == 0xF;
}

void qid_format(uint64_t v, char id[QID_LEN + 1])
{
	snprintf(id, QID_LEN + 1, "%016llX", (unsigned long long)v);
}

unsigned qid_bucket(const char *id)
{
	uint32_t h = 2166136261u;	/* FNV-1a of the ID's digits */
	for (int i = 0; i < QID_LEN; i++)
		h = (h ^ (unsigned char)id[i]) * 16777619u;
	return (h ^ h >> 16) % QBUCKETS;
}
