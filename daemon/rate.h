/*
 * rate.h - a relay's max_rate (SPEC "Relays"): at most n messages in
 * any window of `per` seconds, a sliding window over the times of the
 * last n sends.  The times live in a file (SPOOL/rate/NAME, 8 octets
 * each, written as each send is counted, not synced: a crash or a
 * restart loop keeps the page cache, and a power cut only forgets
 * sends), so a daemon restarted in a loop cannot exceed a daily quota.
 * Not thread-safe: the pool's mutex guards it (upstreams.c).
 */
#ifndef OUTBOXD_RATE_H
#define OUTBOXD_RATE_H

#include <stddef.h>
#include <stdint.h>

struct rate {
	uint64_t n;		/* sends per window; 0: no limit */
	double per;		/* the window, seconds */
	double *ring;		/* the last sends' times, ring[head] the oldest once full */
	size_t head, used;
	int fd;			/* the file, -1 if it could not be opened (memory only) */
};

/* Start counting under path (NULL: memory only), keeping the sends the
 * file remembers from the last `per` seconds. */
void rate_open(struct rate *r, const char *path, uint64_t n, uint64_t per);
/* When the next send may go (<= now: now). */
double rate_next(const struct rate *r, double now);
/* Count a send at now. */
void rate_take(struct rate *r, double now);
void rate_close(struct rate *r);

#endif
