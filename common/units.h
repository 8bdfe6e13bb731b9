/*
 * units.h - durations and sizes as the configuration writes them.
 *
 * Durations: a whole number with an optional suffix s, m, h or d
 * ("90", "90s", "5m", "1h30m").  Sizes: a whole number with an optional
 * suffix K, M or G (powers of 1024; lower case accepted).  Overflow,
 * empty strings, signs, spaces inside and unknown suffixes are errors.
 */
#ifndef OUTBOX_UNITS_H
#define OUTBOX_UNITS_H

#include <stdint.h>
#include <stddef.h>

int parse_duration(const char *s, uint64_t *seconds);
int parse_size(const char *s, uint64_t *bytes);
int parse_uint(const char *s, uint64_t max, uint64_t *out);
/* Shortest exact form: 3600 -> "1h", 90 -> "1m30s", 0 -> "0s". */
const char *format_duration(uint64_t seconds, char *out, size_t n);
/* 35 * 1024 * 1024 -> "35M"; 1000 -> "1000". */
const char *format_size(uint64_t bytes, char *out, size_t n);

#endif
