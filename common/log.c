/*
 * log.c - syslog or stderr logging with a level filter.  See log.h.
 *
 * The logger's settings are process-wide by nature (like syslog's own
 * openlog state); they are set once at start and on SIGHUP, from the
 * daemon's main thread.
 *
 * Invariant: whatever a caller formats, a line reaches syslog or stderr
 * with its controls escaped (escape.h): a newline, an ESC or a C1
 * control from a client, an upstream, a token endpoint or a file name
 * can neither forge a line nor reach the terminal of whoever reads the
 * log, even where a caller forgot log_safe().
 */
#include "log.h"

#include "escape.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static struct {
	const char *ident;
	enum log_target target;
	_Atomic int level;	/* changed on SIGHUP while workers log */
} logger = { "outbox", LOG_TO_STDERR, LOG_LVL_INFO };

static const int syslog_prio[] = {
	[LOG_LVL_ERR] = LOG_ERR, [LOG_LVL_WARNING] = LOG_WARNING,
	[LOG_LVL_NOTICE] = LOG_NOTICE, [LOG_LVL_INFO] = LOG_INFO,
	[LOG_LVL_DEBUG] = LOG_DEBUG,
};
static const char *const level_tag[] = {
	[LOG_LVL_ERR] = "error: ", [LOG_LVL_WARNING] = "warning: ",
	[LOG_LVL_NOTICE] = "", [LOG_LVL_INFO] = "", [LOG_LVL_DEBUG] = "debug: ",
};

void log_open(const char *ident, enum log_target target, enum log_level level)
{
	logger.ident = ident;
	logger.target = target;
	logger.level = level;
	if (target == LOG_TO_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_set_level(enum log_level level)
{
	logger.level = level;
}

enum log_level log_get_level(void)
{
	return (enum log_level)logger.level;
}

static void log_v(enum log_level lvl, const char *fmt, va_list ap)
{
	if ((int)lvl > logger.level)
		return;
	char raw[2048], line[4096];
	vsnprintf(raw, sizeof raw, fmt, ap);
	size_t n = strlen(raw);
	while (n && raw[n - 1] == '\n')	/* a format's own end of line: not part of the event */
		n--;
	esc_copy(line, sizeof line, raw, n);
	if (logger.target == LOG_TO_SYSLOG) {
		syslog(syslog_prio[lvl], "%s%s", level_tag[lvl], line);
		return;
	}
	struct timespec ts;
	struct tm tm;
	char stamp[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ld %s[%ld]: %s%s\n", stamp, ts.tv_nsec / 1000000,
		logger.ident, (long)getpid(), level_tag[lvl], line);
	fflush(stderr);
}

#define LOG_FN(name, lvl)                         \
	void name(const char *fmt, ...)           \
	{                                         \
		va_list ap;                       \
		va_start(ap, fmt);                \
		log_v(lvl, fmt, ap);              \
		va_end(ap);                       \
	}
LOG_FN(log_err, LOG_LVL_ERR)
LOG_FN(log_warn, LOG_LVL_WARNING)
LOG_FN(log_notice, LOG_LVL_NOTICE)
LOG_FN(log_info, LOG_LVL_INFO)
LOG_FN(log_debug, LOG_LVL_DEBUG)

void fatal(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_v(LOG_LVL_ERR, fmt, ap);
	va_end(ap);
	exit(code);
}

const char *log_safe(const char *s, char *out, size_t n)
{
	if (n > 0)
		esc_copy(out, n, s ? s : "", s ? strlen(s) : 0);
	return out;
}
