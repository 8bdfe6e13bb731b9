/*
 * util.h - small helpers shared by every outbox program.
 *
 * Owns: the error idiom (ERRORS below: struct err + err_set), allocation
 * that cannot return NULL, growable byte buffers, and the durability
 * primitives (write_all, fsync of a directory) used by the queue store.
 *
 * ERRORS: there are two channels, and only two.
 *
 *  1. An error about us (a file we cannot write, a configuration we
 *     cannot read, a directory whose fsync fails) is a `struct err`: a
 *     function that can fail takes a `struct err *` last, returns -1
 *     (or NULL) after filling it with err_set() or err_sys() (which
 *     keeps errno in e->sys), and returns 0 (or a value) on success
 *     without touching it.  The caller reports it, or adds context and
 *     passes it on.  What a library function has to say that is not a
 *     failure is returned too, as a value the caller logs: a count
 *     (store_clean_tmp), a step (store_walk_next's WALK_TROUBLE), news
 *     taken when the caller is ready (store_news), notes kept in the
 *     object (struct store's notes).
 *
 *  2. A reason about mail or a peer (the upstream's reply to a
 *     recipient, why a relay refused us, why a relay's login is needed)
 *     is not our error: it lives in the object it is about, as Postfix
 *     keeps its DSN_BUF in the SMTP state: smtp_client's fail_text and
 *     last reply, an attempt's per-recipient replies (daemon/), the
 *     report text of dsn.c.  Functions that fill such a reason take the
 *     object (or, for token_login_needed, a buffer the caller keeps in
 *     its object).
 *
 * Buffers `char *out, size_t n` remain only for formatting a value
 * (format_size, log_safe, smtp_reply_line ...), never for an error.
 * Thin wrappers of system calls (write_all, rename_noreplace,
 * rename_aside, helper_path) return -1 with errno, as the calls they
 * wrap do; their callers turn that into a struct err (err_sys).
 *
 * NOBODY LOGS FROM INSIDE common/ but log.c itself.  The documented
 * exceptions left (both reached deep inside an upstream session, which
 * has no channel for news yet): tokens.c logs the OAuth2 helper's
 * "note" lines, a token's arrival and a dead refresh token asked again;
 * smtp_open() logs its one fall-back to TLS 1.2 without RSA-PSS.  The
 * way out is the store's: keep them as news in the token cache and the
 * session for the daemon to take and log (store_news()).
 */
#ifndef OUTBOX_UTIL_H
#define OUTBOX_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define OUTBOX_VERSION "0.1.0"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct err {
	char msg[512];
	int sys;	/* the errno behind it (err_sys), else 0 */
};

/* Fill e (may be NULL) with a formatted message; always returns -1. */
int err_set(struct err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* As err_set, appending ": strerror(errno)". */
int err_sys(struct err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A growable byte buffer; data is always NUL-terminated for convenience. */
struct buf {
	char *data;
	size_t len;
	size_t cap;
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reserve(struct buf *b, size_t extra);
void buf_add(struct buf *b, const void *p, size_t n);
void buf_adds(struct buf *b, const char *s);
void buf_addc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Drop the first n bytes. */
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);

/* write(2) until done or a real error; -1 with errno set on failure. */
int write_all(int fd, const void *p, size_t n);
/* open(dir, O_RDONLY|O_DIRECTORY) + fsync + close. */
int fsync_dir(const char *dir, struct err *e);
/* Where helper program NAME is: outbox-NAME beside this program (the
 * build tree), else ../libexec/outbox/NAME (installed); -1 when
 * /proc/self/exe cannot be read. */
int helper_path(const char *name, char *out, size_t n);
/* rename(2) that never replaces a file: RENAME_NOREPLACE, or link +
 * unlink where the file system lacks it.  -1 with errno (EEXIST). */
int rename_noreplace(const char *from, const char *to);
/* Move from into dir as name, or name.1, name.2 ... (never replacing a
 * file there: corrupt/, pickup/bad/); *to gets the path used (free it).
 * -1 with errno. */
int rename_aside(const char *from, const char *dir, const char *name, char **to);
/* mkdir of one level with exactly mode (umask ignored; a set-group-ID
 * bit the system refuses is left out), then fsync of the new directory
 * and of its parent (durable before use); an existing directory is left
 * as it is, without a mkdir. */
int ensure_dir(const char *path, mode_t mode, struct err *e);

/* Current wall-clock time in seconds, with microseconds. */
double now_real(void);
/* Monotonic seconds. */
double now_mono(void);

/* ASCII case-insensitive prefix match; returns length matched or 0. */
size_t prefix_ci(const char *s, const char *prefix);
/* Strip leading/trailing ASCII whitespace in place; returns s. */
char *trim(char *s);

/* The local host name (FQDN if the resolver knows it). */
const char *local_hostname(char *buf, size_t len);

/* Wipe a secret (a password, a token) and free it; here, not in auth.c,
 * so that a program that only reads one (outbox setup) needs no TLS
 * library. */
void secret_free(char *s);

#endif
