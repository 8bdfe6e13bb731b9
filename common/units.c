/*
 * units.c - parse and format durations and sizes.  See units.h.
 * Returns 0 on success, -1 on any malformed input; never partial results.
 */
#include "units.h"

#include <stdio.h>
#include <string.h>

/* Read one run of digits; -1 on none or overflow. */
static int read_digits(const char **sp, uint64_t *out)
{
	const char *s = *sp;
	uint64_t v = 0;
	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*sp = s;
	*out = v;
	return 0;
}

static int mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
	if (b != 0 && a > UINT64_MAX / b)
		return -1;
	*out = a * b;
	return 0;
}

int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v;
	if (!s || read_digits(&s, &v) < 0 || *s != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

int parse_duration(const char *s, uint64_t *seconds)
{
	uint64_t total = 0;
	int last_unit = 5; /* units must come in decreasing order */
	if (!s || !*s)
		return -1;
	while (*s) {
		uint64_t v, part;
		int unit;
		if (read_digits(&s, &v) < 0)
			return -1;
		switch (*s) {
		case 'd': unit = 4; break;
		case 'h': unit = 3; break;
		case 'm': unit = 2; break;
		case 's': unit = 1; break;
		case '\0': unit = 0; break;
		default: return -1;
		}
		static const uint64_t mult[] = { 1, 1, 60, 3600, 86400 };
		if (unit >= last_unit || (unit == 0 && last_unit != 5))
			return -1;
		last_unit = unit;
		if (mul_ok(v, mult[unit], &part) < 0 || total > UINT64_MAX - part)
			return -1;
		total += part;
		if (unit)
			s++;
	}
	*seconds = total;
	return 0;
}

int parse_size(const char *s, uint64_t *bytes)
{
	uint64_t v, m = 1;
	if (!s || read_digits(&s, &v) < 0)
		return -1;
	switch (*s) {
	case '\0': break;
	case 'k': case 'K': m = 1024; s++; break;
	case 'm': case 'M': m = 1024 * 1024; s++; break;
	case 'g': case 'G': m = 1024 * 1024 * 1024; s++; break;
	default: return -1;
	}
	if (*s != '\0')
		return -1;
	return mul_ok(v, m, bytes);
}

const char *format_duration(uint64_t seconds, char *out, size_t n)
{
	static const struct { uint64_t div; char suffix; } u[] = {
		{ 86400, 'd' }, { 3600, 'h' }, { 60, 'm' }, { 1, 's' },
	};
	size_t o = 0;
	out[0] = '\0';
	if (seconds == 0) {
		snprintf(out, n, "0s");
		return out;
	}
	for (size_t i = 0; i < sizeof u / sizeof u[0] && o < n; i++) {
		uint64_t q = seconds / u[i].div;
		if (q == 0)
			continue;
		int w = snprintf(out + o, n - o, "%llu%c", (unsigned long long)q, u[i].suffix);
		if (w < 0)
			break;
		o += (size_t)w;
		seconds %= u[i].div;
	}
	return out;
}

const char *format_size(uint64_t bytes, char *out, size_t n)
{
	static const struct { uint64_t div; char suffix; } u[] = {
		{ 1024ULL * 1024 * 1024, 'G' }, { 1024 * 1024, 'M' }, { 1024, 'K' },
	};
	for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
		if (bytes != 0 && bytes % u[i].div == 0) {
			snprintf(out, n, "%llu%c", (unsigned long long)(bytes / u[i].div), u[i].suffix);
			return out;
		}
	}
	snprintf(out, n, "%llu", (unsigned long long)bytes);
	return out;
}
