/* retry.c - backoff with jitter.  See retry.h. */
#include "retry.h"

double retry_delay(uint64_t retry_min, uint64_t retry_max, unsigned attempts, double rnd)
{
	double lo = (double)retry_min, hi = (double)retry_max;
	double d = lo;
	for (unsigned i = 1; i < attempts && d < hi; i++)
		d *= 2;
	if (d > hi)
		d = hi;
	d *= 0.9 + 0.2 * rnd;
	if (d < lo)
		d = lo;
	if (d > hi)
		d = hi;
	return d;
}
