/*
 * auth.c - relay secrets and SASL.  See auth.h.
 */
#include "auth.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/base64.h>

extern char **environ;

#define SECRET_MAX (64 * 1024)

static const struct {
	unsigned bit;
	const char *name;
} mechs[] = {
	{ SASL_PLAIN, "PLAIN" }, { SASL_LOGIN, "LOGIN" },
	{ SASL_XOAUTH2, "XOAUTH2" }, { SASL_OAUTHBEARER, "OAUTHBEARER" },
};

unsigned sasl_parse_offer(const char *s)
{
	unsigned bits = 0;
	char *copy = xstrdup(s), *save = NULL;
	for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save))
		for (size_t i = 0; i < ARRAY_LEN(mechs); i++)
			if (strcasecmp(t, mechs[i].name) == 0)
				bits |= mechs[i].bit;
	free(copy);
	return bits;
}

static const unsigned auto_order[] = { SASL_PLAIN, SASL_LOGIN, SASL_OAUTHBEARER, SASL_XOAUTH2 };

unsigned sasl_choose(int mode, unsigned offered)
{
	switch (mode) {
	case AUTH_PLAIN: return offered & SASL_PLAIN;
	case AUTH_LOGIN: return offered & SASL_LOGIN;
	case AUTH_XOAUTH2: return offered & SASL_XOAUTH2;
	case AUTH_OAUTHBEARER: return offered & SASL_OAUTHBEARER;
	case AUTH_AUTO:
		/* a password and a token look alike: auto prefers the password
		 * mechanisms, and sends the secret as a token only to a server
		 * that takes nothing else (OAUTHBEARER, the standard, first) */
		for (size_t i = 0; i < ARRAY_LEN(auto_order); i++)
			if (offered & auto_order[i])
				return auto_order[i];
		return 0;
	}
	return 0;
}

const char *sasl_name(unsigned mech)
{
	for (size_t i = 0; i < ARRAY_LEN(mechs); i++)
		if (mechs[i].bit == mech)
			return mechs[i].name;
	return "?";
}

static void chomp(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

char *secret_read_file(const char *path, const char *what, struct err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err_sys(e, "cannot read %s %s", what, path);
		return NULL;
	}
	char *s = xmalloc(SECRET_MAX + 1);
	size_t n = 0;
	ssize_t r;
	while (n < SECRET_MAX && (r = read(fd, s + n, SECRET_MAX - n)) > 0)
		n += (size_t)r;
	close(fd);
	s[n] = '\0';
	s[strcspn(s, "\n")] = '\0';	/* the first line is the secret */
	chomp(s);
	return s;
}

char **split_command(const char *line)
{
	char **argv = xcalloc(1, sizeof *argv);
	size_t argc = 0;
	struct buf word;
	const char *p = line;
	buf_init(&word);
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		char quote = 0;
		buf_reset(&word);
		buf_adds(&word, "");
		for (; *p && (quote || (*p != ' ' && *p != '\t')); p++) {
			if (quote && *p == quote) {
				quote = 0;
			} else if (!quote && (*p == '\'' || *p == '"')) {
				quote = *p;
			} else if (*p == '\\' && quote != '\'' && p[1]) {
				buf_addc(&word, *++p);
			} else {
				buf_addc(&word, *p);
			}
		}
		if (quote) {
			buf_free(&word);
			free_argv(argv);
			return NULL;
		}
		argv = xrealloc(argv, (argc + 2) * sizeof *argv);
		argv[argc++] = xstrdup(word.data);
		argv[argc] = NULL;
	}
	buf_free(&word);
	return argv;
}

void free_argv(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

int run_capture(char *const argv[], int timeout_s, char **out, struct err *e)
{
	int pfd[2];
	pid_t pid;
	posix_spawn_file_actions_t fa;
	if (!argv[0])
		return err_set(e, "empty command");
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return err_sys(e, "pipe");
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (rc != 0) {
		close(pfd[0]);
		errno = rc;
		return err_sys(e, "cannot run %s", argv[0]);
	}
	struct buf b;
	buf_init(&b);
	double deadline = now_mono() + timeout_s;
	bool timed_out = false;
	for (;;) {	/* its output, until EOF, the limit or the deadline */
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		double left = deadline - now_mono();
		int n = left > 0 ? poll(&p, 1, (int)(left * 1000) + 1) : 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			timed_out = true;
			break;
		}
		buf_reserve(&b, 4096);
		ssize_t r = read(pfd[0], b.data + b.len, 4096);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		b.len += (size_t)r;
		if (b.len > SECRET_MAX)
			break;
	}
	close(pfd[0]);
	int status = 0;
	pid_t w;
	/* its exit, by the same deadline: one that closed its output and
	 * lives on is killed */
	for (;;) {
		w = waitpid(pid, &status, WNOHANG);
		if (w < 0 && errno == EINTR)
			continue;
		if (w != 0 || timed_out || b.len > SECRET_MAX || now_mono() >= deadline)
			break;
		nanosleep(&(struct timespec){ .tv_nsec = 5000000 }, NULL);
	}
	if (w == 0) {
		timed_out = timed_out || b.len <= SECRET_MAX;
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	if (timed_out || b.len > SECRET_MAX || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		if (b.data)
			explicit_bzero(b.data, b.len);
		buf_free(&b);
		if (timed_out)
			return err_set(e, "%s timed out after %d s", argv[0], timeout_s);
		return err_set(e, "%s failed (%s %d)", argv[0],
			       WIFEXITED(status) ? "exit status" : "signal",
			       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	}
	buf_adds(&b, "");
	*out = b.data;
	return 0;
}

char *secret_get(const struct relay *r, struct err *e)
{
	if (*r->password_file)
		return secret_read_file(r->password_file, "password_file", e);
	if (!*r->password_command)
		return xstrdup("");
	char **argv = split_command(r->password_command);
	char *out = NULL;
	if (!argv) {
		err_set(e, "password_command: unbalanced quotes");
		return NULL;
	}
	if (run_capture(argv, 30, &out, e) < 0) {
		char msg[sizeof e->msg];
		snprintf(msg, sizeof msg, "password_command: %.450s", e->msg);
		err_set(e, "%s", msg);
		out = NULL;
	} else {
		chomp(out);
	}
	free_argv(argv);
	return out;
}

void base64_add(struct buf *out, const void *data, size_t n)
{
	size_t olen = 0;
	buf_reserve(out, 4 * (n / 3 + 2) + 1);
	mbedtls_base64_encode((unsigned char *)out->data + out->len, out->cap - out->len, &olen,
			      data, n);
	out->len += olen;
	out->data[out->len] = '\0';
}

void sasl_initial_response(unsigned mech, const char *user, const char *secret,
			   const char *host, int port, struct buf *out)
{
	struct buf raw;
	buf_init(&raw);
	switch (mech) {
	case SASL_PLAIN:
		buf_addc(&raw, '\0');
		buf_adds(&raw, user);
		buf_addc(&raw, '\0');
		buf_adds(&raw, secret);
		break;
	case SASL_XOAUTH2:
		buf_printf(&raw, "user=%s\001auth=Bearer %s\001\001", user, secret);
		break;
	case SASL_OAUTHBEARER:
		buf_printf(&raw, "n,a=%s,\001host=%s\001port=%d\001auth=Bearer %s\001\001", user, host,
			   port, secret);
		break;
	default:
		break;
	}
	base64_add(out, raw.data ? raw.data : "", raw.len);
	if (raw.data)
		explicit_bzero(raw.data, raw.len);
	buf_free(&raw);
}
