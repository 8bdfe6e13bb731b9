/*
 * rate.c - a sliding-window send counter kept in a file (rate.h).
 *
 * Invariant: ring holds the times of the last `used` sends (at most n),
 * in order from ring[head] (when full) round to the newest; the file
 * holds the same slots at the same positions.
 */
#include "rate.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

void rate_open(struct rate *r, const char *path, uint64_t n, uint64_t per)
{
	memset(r, 0, sizeof *r);
	r->fd = -1;
	r->n = n;
	r->per = (double)per;
	if (!n)
		return;
	r->ring = xcalloc(n, sizeof *r->ring);
	if (!path)
		return;
	r->fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (r->fd < 0) {
		log_warn("%s: %s: max_rate counts in memory only (a restart forgets)", path, strerror(errno));
		return;
	}
	/* what the file remembers, newest n within the window, rewritten in order */
	off_t size = lseek(r->fd, 0, SEEK_END);
	size_t have = size > 0 ? (size_t)size / sizeof(double) : 0;
	double *old = xcalloc(have ? have : 1, sizeof *old);
	ssize_t got = have ? pread(r->fd, old, have * sizeof *old, 0) : 0;
	have = got > 0 ? (size_t)got / sizeof *old : 0;
	double now = now_real();
	size_t k = 0;
	for (size_t i = 0; i < have; i++)
		if (isfinite(old[i]) && old[i] > now - r->per && old[i] <= now + 1)
			old[k++] = old[i];
	qsort(old, k, sizeof *old, cmp_double);
	size_t from = k > n ? k - n : 0;
	for (size_t i = from; i < k; i++)
		r->ring[r->used++] = old[i];
	r->head = r->used == n ? 0 : r->used;	/* full: the oldest is at 0 */
	free(old);
	if (ftruncate(r->fd, 0) < 0
	    || (r->used && pwrite(r->fd, r->ring, r->used * sizeof *r->ring, 0) < 0))
		log_warn("%s: %s", path, strerror(errno));
}

double rate_next(const struct rate *r, double now)
{
	if (!r->n || r->used < r->n)
		return now;
	double t = r->ring[r->head] + r->per;	/* the oldest of the last n leaves the window */
	return t > now ? t : now;
}

void rate_take(struct rate *r, double now)
{
	if (!r->n)
		return;
	size_t slot = r->used < r->n ? r->used : r->head;
	r->ring[slot] = now;
	if (r->used < r->n)
		r->used++;
	if (r->used == r->n)
		r->head = (slot + 1) % r->n;
	if (r->fd >= 0 && pwrite(r->fd, &now, sizeof now, (off_t)(slot * sizeof now)) < 0)
		log_warn("max_rate file: %s", strerror(errno));
}

void rate_close(struct rate *r)
{
	if (r->fd >= 0)
		close(r->fd);
	free(r->ring);
	memset(r, 0, sizeof *r);
	r->fd = -1;
}
