/*
 * util.c - error idiom, allocation, buffers and durability primitives.
 * See util.h.  Allocation failure is fatal: outbox cannot do anything
 * useful without memory and must not half-accept a message.
 */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int err_set(struct err *e, const char *fmt, ...)
{
	if (e) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof e->msg, fmt, ap);
		va_end(ap);
		e->sys = 0;
	}
	return -1;
}

int err_sys(struct err *e, const char *fmt, ...)
{
	int saved = errno;
	if (e) {
		char tmp[400];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(tmp, sizeof tmp, fmt, ap);
		va_end(ap);
		snprintf(e->msg, sizeof e->msg, "%s: %s", tmp, strerror(saved));
		e->sys = saved;
	}
	errno = saved;
	return -1;
}

static void out_of_memory(void)
{
	static const char m[] = "outbox: out of memory\n";
	(void)!write(2, m, sizeof m - 1);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		out_of_memory();
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		out_of_memory();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		out_of_memory();
	return p;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	char *p;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		out_of_memory();
	va_end(ap);
	return p;
}

void buf_init(struct buf *b)
{
	b->data = NULL;
	b->len = b->cap = 0;
}

void buf_free(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

void buf_reserve(struct buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

void buf_add(struct buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void buf_addc(struct buf *b, char c)
{
	buf_add(b, &c, 1);
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	buf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->data, b->data + n, b->len - n);
		b->len -= n;
	}
	if (b->data)
		b->data[b->len] = '\0';
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int fsync_dir(const char *dir, struct err *e)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, "open %s", dir);
	if (fsync(fd) < 0) {
		err_sys(e, "fsync %s", dir);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* path, which is there: a directory, or an error. */
static int existing_dir(const char *path, struct err *e)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return err_sys(e, "stat %s", path);
	return S_ISDIR(st.st_mode) ? 0 : err_set(e, "%s exists and is not a directory", path);
}

int ensure_dir(const char *path, mode_t mode, struct err *e)
{
	struct stat st;
	/* an existing one is not made again: under systemd's
	 * RestrictSUIDSGID= even a mkdir that would fail with EEXIST is
	 * refused (EPERM) when its mode has the set-group-ID bit */
	if (stat(path, &st) == 0 || errno != ENOENT)
		return existing_dir(path, e);
	if (mkdir(path, mode & 0777) < 0)	/* EEXIST: made meanwhile, theirs as it is */
		return errno == EEXIST ? existing_dir(path, e) : err_sys(e, "mkdir %s", path);
	/* mkdir() applies the umask and ignores set-group-ID: be exact.  A
	 * set-group-ID bit refused (RestrictSUIDSGID=) is not fatal: the
	 * directory works, its new files keep their makers' groups (the
	 * caller may check and say so). */
	if (chmod(path, mode) < 0
	    && (errno != EPERM || !(mode & S_ISGID) || chmod(path, mode & 0777) < 0))
		return err_sys(e, "chmod %s", path);
	/* the new directory and its name in the parent reach the disk
	 * before anything is acknowledged in it */
	char *parent = xstrdup(path);
	char *slash = strrchr(parent, '/');
	if (slash == parent)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	int rc = fsync_dir(path, e) < 0 || fsync_dir(slash ? parent : ".", e) < 0 ? -1 : 0;
	free(parent);
	return rc;
}

double now_real(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

size_t prefix_ci(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);
	return strncasecmp(s, prefix, n) == 0 ? n : 0;
}

char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

const char *local_hostname(char *buf, size_t len)
{
	if (gethostname(buf, len) < 0 || buf[0] == '\0') {
		snprintf(buf, len, "localhost");
		return buf;
	}
	buf[len - 1] = '\0';
	if (strchr(buf, '.'))
		return buf;
	struct addrinfo hints = { .ai_flags = AI_CANONNAME }, *res = NULL;
	if (getaddrinfo(buf, NULL, &hints, &res) == 0 && res && res->ai_canonname
	    && strchr(res->ai_canonname, '.'))
		snprintf(buf, len, "%s", res->ai_canonname);
	if (res)
		freeaddrinfo(res);
	return buf;
}

int rename_noreplace(const char *from, const char *to)
{
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	if (link(from, to) < 0)
		return -1;
	(void)unlink(from);
	return 0;
}

int rename_aside(const char *from, const char *dir, const char *name, char **to)
{
	int rc = -1;
	*to = NULL;
	for (int i = 0; i < 100 && rc < 0; i++) {
		free(*to);
		*to = i ? xasprintf("%s/%s.%d", dir, name, i) : xasprintf("%s/%s", dir, name);
		rc = rename_noreplace(from, *to);
		if (rc < 0 && errno != EEXIST)
			break;
	}
	return rc;
}

int helper_path(const char *name, char *out, size_t n)
{
	char self[4096];
	ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
	if (len <= 0) {
		perror("outbox: /proc/self/exe");
		return -1;
	}
	self[len] = '\0';
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	snprintf(out, n, "%s/outbox-%s", self, name);
	if (access(out, X_OK) != 0)
		snprintf(out, n, "%s/../libexec/outbox/%s", self, name);
	return 0;
}

void secret_free(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}
