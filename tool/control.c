/*
 * control.c - the queue tools as clients of outboxd's control socket
 * (daemon/control.h has the protocol): outbox queue (mailq, sendmail
 * -bp), show, flush (sendmail -q), delete, hold, release, status.  The
 * daemon decides what the caller may see and do (from the socket's
 * peer credentials); this side only sends the request and passes the
 * answer on: "1 " lines to stdout, "2 " lines to stderr, and the exit
 * status from the last line.  Whatever the daemon sends, a control
 * character (ESC, CR, a C1 control) or malformed UTF-8 reaches the
 * terminal escaped as \xHH (escape.h): a hostile header in `outbox show`
 * or an upstream's reply in `outbox queue` cannot drive the admin's
 * terminal.  JSON stays valid JSON (the escape's backslash doubled).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include "../common/escape.h"
#include "tool.h"

#define CONTROL_TIMEOUT_S 300

/* One line of the answer to out, escaped. */
static void put_line(FILE *out, const char *l, size_t n, bool json)
{
	struct buf b;
	buf_init(&b);
	esc_buf(&b, l, n, json);
	buf_addc(&b, '\n');
	fwrite(b.data, 1, b.len, out);
	buf_free(&b);
}

/* Pass the answer on; the exit status it ends with, or 75 if it broke off. */
static int relay_answer(int fd, bool json)
{
	FILE *in = fdopen(fd, "r");
	char *l = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = -1;
	while (in && (n = getline(&l, &cap, in)) > 0) {
		if (l[n - 1] == '\n')
			l[--n] = '\0';
		if (strncmp(l, "1 ", 2) == 0)
			put_line(stdout, l + 2, (size_t)n - 2, json);
		else if (strncmp(l, "2 ", 2) == 0)
			put_line(stderr, l + 2, (size_t)n - 2, false);
		else if (strncmp(l, "0 exit ", 7) == 0)
			rc = atoi(l + 7);
	}
	free(l);
	if (in)
		fclose(in);
	else
		close(fd);
	if (rc < 0) {
		fprintf(stderr, "outbox: outboxd ended the answer early\n");
		return EX_TEMPFAIL;
	}
	return rc;
}

int control_request(const struct config *cf, const char *verb, int argc, char **argv, bool json)
{
	struct buf req;
	int fd = tool_connect(cf->listen.control, CONTROL_TIMEOUT_S);
	if (fd < 0) {
		fprintf(stderr, "outbox: outboxd is not running (control socket %s: %s)\n",
			cf->listen.control, strerror(errno));
		return strcmp(verb, "STATUS") == 0 ? 1 : EX_UNAVAILABLE;
	}
	buf_init(&req);
	buf_adds(&req, verb);
	if (json)
		buf_adds(&req, " --json");
	for (int i = 0; i < argc; i++) {
		if (strpbrk(argv[i], " \r\n") || !*argv[i]) {
			fprintf(stderr, "outbox: %s: not a queue ID\n", argv[i]);
			buf_free(&req);
			close(fd);
			return EX_USAGE;
		}
		buf_printf(&req, " %s", argv[i]);
	}
	buf_adds(&req, "\n");
	if (write_all(fd, req.data, req.len) < 0 && errno != EPIPE && errno != ECONNRESET) {
		fprintf(stderr, "outbox: outboxd: %s\n", strerror(errno));
		buf_free(&req);
		close(fd);
		return EX_TEMPFAIL;
	}
	buf_free(&req);	/* (refused at once, the request unread: the answer says why) */
	shutdown(fd, SHUT_WR);
	fflush(stdout);
	return relay_answer(fd, json);
}

long control_reloads(const struct config *cf)
{
	int fd = tool_connect(cf->listen.control, 10);
	if (fd < 0)
		return -1;
	struct buf ans;
	buf_init(&ans);
	char b[4096];
	ssize_t n;
	if (write_all(fd, "STATUS --json\n", 14) == 0)
		while ((n = read(fd, b, sizeof b)) > 0 && ans.len < 65536)
			buf_add(&ans, b, (size_t)n);
	close(fd);
	buf_addc(&ans, '\0');
	const char *p = strstr(ans.data, "\"reloads\":");
	long v = p ? strtol(p + 10, NULL, 10) : -1;
	buf_free(&ans);
	return v;
}

int control_main(const char *cmd, int argc, char **argv, const char *conf)
{
	static const struct { const char *cmd, *verb; int min, max; bool json; } cmds[] = {
		{ "queue", "QUEUE", 0, 0, true }, { "mailq", "QUEUE", 0, 0, true },
		{ "show", "SHOW", 1, 1, false }, { "flush", "FLUSH", 0, 512, false },
		{ "delete", "DELETE", 1, 512, false }, { "hold", "HOLD", 1, 512, false },
		{ "release", "RELEASE", 1, 512, false }, { "status", "STATUS", 0, 0, true },
		{ "metrics", "METRICS", 0, 0, false },
	};
	bool json = false;
	int k = -1, n = 0;
	char *args[513];
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (strcmp(cmd, cmds[i].cmd) == 0)
			k = (int)i;
	for (int i = 0; k >= 0 && i < argc && n < 513; i++) {
		if (strcmp(argv[i], "--json") == 0 && cmds[k].json)
			json = true;
		else
			args[n++] = argv[i];
	}
	if (k < 0 || n < cmds[k].min || n > cmds[k].max) {
		fprintf(stderr, "usage: outbox %s%s%s\n", cmd, k >= 0 && cmds[k].json ? " [--json]" : "",
			k < 0 ? "" : cmds[k].max == 0 ? "" : cmds[k].min ? " ID..." : " [ID...]");
		return EX_USAGE;
	}
	struct config *cf = tool_config(conf);
	int rc = control_request(cf, cmds[k].verb, n, args, json);
	config_free(cf);
	return rc;
}
