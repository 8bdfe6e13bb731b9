/*
 * log.h - the one logging facility of outbox.
 *
 * Owns: where log lines go (syslog facility mail, or stderr with a time
 * stamp) and the level filter.  Lines follow SPEC "Logging": one event a
 * line, prefixed with the queue ID where there is one, key=value fields.
 *
 * Invariant: callers never pass passwords or message bodies (nor
 * tokens).  Every line is escaped as a whole before it is written
 * (escape.h: C0 and C1 controls, DEL and malformed UTF-8 as \xHH), so
 * no outside string can forge a line or reach a terminal raw.  Fields
 * from the network that are kept or shown elsewhere too (a reply in the
 * queue file, a file name) go through log_safe() first: the same rule,
 * so that escaping twice changes nothing (no \x5Cx1B).
 */
#ifndef OUTBOX_LOG_H
#define OUTBOX_LOG_H

#include <stddef.h>

enum log_level { LOG_LVL_ERR, LOG_LVL_WARNING, LOG_LVL_NOTICE, LOG_LVL_INFO, LOG_LVL_DEBUG };
enum log_target { LOG_TO_SYSLOG, LOG_TO_STDERR };

void log_open(const char *ident, enum log_target target, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log at error level and exit(code). */
void fatal(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

/* Copy s into out (size n) escaped as escape.h says (controls and
 * malformed UTF-8 as \xHH), truncated to fit at a character; returns out. */
const char *log_safe(const char *s, char *out, size_t n);

#endif
