/*
 * retry.h - the retry policy: exponential backoff with jitter between
 * [queue] retry_min and retry_max.
 *
 * The n-th retry (n = 1 after the first failed attempt) waits
 * retry_min * 2^(n-1), capped at retry_max, then multiplied by a random
 * factor in [0.9, 1.1] and clamped to [retry_min, retry_max], so that
 * messages deferred together do not all come back at the same moment.
 */
#ifndef OUTBOX_RETRY_H
#define OUTBOX_RETRY_H

#include <stdint.h>

/* rnd is a uniform random number in [0, 1). */
double retry_delay(uint64_t retry_min, uint64_t retry_max, unsigned attempts, double rnd);

#endif
