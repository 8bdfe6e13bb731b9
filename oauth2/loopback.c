/*
 * loopback.c - the loopback redirect and the pasted address (loopback.h).
 */
#include "loopback.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int loopback_open(struct loopback *l, int in, struct err *e)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	buf_init(&l->line);
	l->in = in;
	l->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l->fd < 0)
		return err_sys(e, "socket");
	if (bind(l->fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(l->fd, 8) < 0
	    || getsockname(l->fd, (struct sockaddr *)&a, &len) < 0) {
		err_sys(e, "cannot listen on 127.0.0.1");
		loopback_close(l);
		return -1;
	}
	l->port = ntohs(a.sin_port);
	return 0;
}

void loopback_close(struct loopback *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	buf_free(&l->line);
}

/* The query of an address or request target: after '?', before '#'. */
static char *query_of(const char *s, size_t n)
{
	const char *q = memchr(s, '?', n);
	if (!q)
		return NULL;
	q++;
	size_t k = (size_t)(s + n - q);
	const char *hash = memchr(q, '#', k);
	return xstrndup(q, hash ? (size_t)(hash - q) : k);
}

static void respond(int conn, const char *status, const char *body)
{
	char head[256];
	int n = snprintf(head, sizeof head,
			 "HTTP/1.1 %s\r\nContent-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n"
			 "Connection: close\r\nContent-Length: %zu\r\n\r\n", status, strlen(body));
	(void)!write_all(conn, head, (size_t)n);
	(void)!write_all(conn, body, strlen(body));
	close(conn);
}

void loopback_answer(int conn, bool ok, const char *text)
{
	if (conn < 0)
		return;
	char page[1024];
	snprintf(page, sizeof page,
		 "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>outbox</title></head>"
		 "<body><h1>%s</h1><p>%s</p></body></html>\n",
		 ok ? "outbox: logged in" : "outbox: the login failed", text);
	respond(conn, ok ? "200 OK" : "400 Bad Request", page);
}

/* Read a request's head from conn, to LOOPBACK_REQUEST_MAX octets
 * within LOOPBACK_READ_S: its length, or -1 (dropped). */
static ssize_t read_head(int conn, char *req, size_t cap)
{
	size_t n = 0;
	double end = now_real() + LOOPBACK_READ_S;
	while (n + 1 < cap) {
		struct pollfd p = { .fd = conn, .events = POLLIN };
		int ms = (int)((end - now_real()) * 1000);
		if (ms <= 0 || poll(&p, 1, ms) <= 0)
			return -1;
		ssize_t k = read(conn, req + n, cap - 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		n += (size_t)k;
		req[n] = '\0';
		if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
			return (ssize_t)n;
	}
	return -1;
}

/* One connection on the listener: the redirect's query, with *conn
 * kept open for the answer; NULL when it was not one (answered or
 * dropped here). */
static char *take_request(struct loopback *l, int *conn)
{
	int c = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return NULL;
	char *req = xmalloc(LOOPBACK_REQUEST_MAX);
	ssize_t n = read_head(c, req, LOOPBACK_REQUEST_MAX);
	char *query = NULL;
	if (n < 0) {
		close(c);
	} else if (strncmp(req, "GET /", 5) != 0) {
		respond(c, "405 Method Not Allowed", "");
	} else if (req[5] == '?') {		/* GET /?...: the redirect */
		query = query_of(req + 4, strcspn(req + 4, " \r\n"));
		*conn = c;
	} else {
		respond(c, "404 Not Found", "");	/* /favicon.ico, or / without a query */
	}
	free(req);
	return query;
}

/* The first line in l->line with an address's query (the lines before
 * it, and it, consumed), or NULL; at the end of the input (eof) the
 * last line needs no newline. */
static char *line_query(struct loopback *l, bool eof)
{
	while (l->line.len) {
		char *nl = memchr(l->line.data, '\n', l->line.len);
		if (!nl && !eof)
			return NULL;
		size_t len = nl ? (size_t)(nl - l->line.data) : l->line.len;
		char *query = query_of(l->line.data, len);
		buf_consume(&l->line, len + (nl != NULL));
		if (query) {
			query[strcspn(query, " \t\r")] = '\0';
			return query;
		}
	}
	return NULL;
}

/* What came on standard input: the query of a pasted address, or NULL
 * (l->in is -1 from its end, or a line longer than a request may be). */
static char *take_line(struct loopback *l)
{
	char chunk[1024];
	ssize_t k = read(l->in, chunk, sizeof chunk);
	if (k < 0 && errno == EINTR)
		return NULL;
	if (k <= 0 || l->line.len + (size_t)k > LOOPBACK_REQUEST_MAX) {
		l->in = -1;
		return k == 0 ? line_query(l, true) : NULL;
	}
	buf_add(&l->line, chunk, (size_t)k);
	return line_query(l, false);
}

char *loopback_next(struct loopback *l, double deadline, int *conn, struct err *e)
{
	*conn = -1;
	for (;;) {
		int ms = (int)((deadline - now_real()) * 1000);
		if (ms <= 0)
			return err_set(e, "no redirect came in time"), NULL;
		struct pollfd p[2] = { { .fd = l->fd, .events = POLLIN }, { .fd = l->in, .events = POLLIN } };
		int k = poll(p, l->in >= 0 ? 2 : 1, ms);
		if (k < 0 && errno != EINTR)
			return err_sys(e, "poll"), NULL;
		char *query = NULL;
		if (k > 0 && p[0].revents)
			query = take_request(l, conn);
		else if (k > 0 && l->in >= 0 && p[1].revents)
			query = take_line(l);
		if (query)
			return query;
	}
}

static int hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode s (n octets) into out: -1 when too long or a control. */
static int decode(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '+')
			c = ' ';
		else if (c == '%' && i + 2 < n && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
			c = hex(s[i + 1]) * 16 + hex(s[i + 2]);
			i += 2;
		}
		if (c < 0x20 || c == 0x7f || o + 1 >= cap)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 1;
}

int query_get(const char *query, const char *key, char *out, size_t n)
{
	size_t lk = strlen(key);
	for (const char *p = query; *p;) {
		size_t len = strcspn(p, "&");
		if (len > lk && strncmp(p, key, lk) == 0 && p[lk] == '=')
			return decode(p + lk + 1, len - lk - 1, out, n);
		p += len + (p[len] == '&');
	}
	return 0;
}
