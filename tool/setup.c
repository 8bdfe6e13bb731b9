/*
 * setup.c - `outbox setup PROVIDER ADDRESS` (SPEC "Providers"): the
 * whole set-up of a relay in one command, as root.
 *
 *  1. outbox.conf.d/50-relay.conf is written beside the configuration
 *     (provider = PROVIDER, user = ADDRESS, the secret's file or the
 *     OAuth2 keys, then each --set KEY=VALUE, which wins over the preset
 *     as any key set in a file does), checked with the rest of the
 *     configuration before it is renamed into place (setup_files.c); an
 *     existing one is replaced only with --force;
 *  2. the secret: for a password or API key provider it is read from
 *     the terminal without echo (from standard input when that is not a
 *     terminal) into a password_file, root:GROUP 0640; for OAuth2 the
 *     login helper runs (outbox oauth2 login, with this terminal), and
 *     writes the refresh token as the daemon's user;
 *  3. outbox probe runs and its verdict is shown; a failed probe stops
 *     here (exit 1), with the files in place to correct;
 *  4. outboxd is reloaded (setup_reload says how);
 *  5. a test message to ADDRESS is sent when asked (y/N, --test,
 *     --no-test), through the sendmail command.
 *
 * The helpers are separate programs (the sendmail path never loads
 * their libraries); this file only runs them.  Exit: 0 done, 1 the
 * login or the probe failed, 64 usage, 73 the snippet exists, 77 not
 * root, 78 the configuration is refused.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <termios.h>
#include <unistd.h>

#include "../common/address.h"
#include "../common/auth.h"
#include "../common/become.h"
#include "../common/providers.h"
#include "setup.h"
#include "tool.h"

#define LINE_MAX_LEN 4096	/* a secret, a client ID or an answer */
#define SETS_MAX 32

struct setup {
	const struct provider *p;
	const char *address;
	const char *user;	/* --user */
	const char *client_id;	/* --client-id */
	const char *login_way;	/* --browser, --device: passed to outbox oauth2 login */
	const char *sets[SETS_MAX];	/* --set KEY=VALUE */
	size_t nsets;
	bool force;
	int test;		/* 1 --test, 0 --no-test, -1 ask */
};

static int usage(void)
{
	fprintf(stderr, "usage: outbox [-C FILE] setup PROVIDER ADDRESS [--user LOGIN] [--client-id ID]\n"
			"           [--browser|--device] [--set KEY=VALUE]... [--force] [--test|--no-test]\n"
			"PROVIDER: %s\n", provider_names());
	return EX_USAGE;
}

/* One line from fd 0, read a byte at a time (what follows stays for a
 * helper that reads the same terminal or pipe); NULL at its end. */
static char *read_line(void)
{
	struct buf b;
	char ch;
	ssize_t n;
	buf_init(&b);
	while ((n = read(0, &ch, 1)) == 1 && ch != '\n' && b.len < LINE_MAX_LEN)
		buf_addc(&b, ch);
	if (n <= 0 && b.len == 0) {
		buf_free(&b);
		return NULL;
	}
	buf_addc(&b, '\0');
	if (b.len > 1 && b.data[b.len - 2] == '\r')
		b.data[b.len - 2] = '\0';
	return b.data;
}

/* A line from the terminal without echo, or from standard input. */
static char *ask(const char *prompt, bool secret)
{
	struct termios old, quiet;
	bool tty = isatty(0) && tcgetattr(0, &old) == 0;
	fprintf(stderr, "%s: ", prompt);
	if (tty && secret) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(0, TCSAFLUSH, &quiet);
	}
	char *line = read_line();
	if (tty && secret) {
		tcsetattr(0, TCSAFLUSH, &old);
		fputc('\n', stderr);
	} else if (!tty) {
		fputc('\n', stderr);
	}
	return line;
}

/* A value that goes into the INI file: one line, no comment marks that
 * inih would cut it at. */
static bool ini_safe(const char *v)
{
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p < 0x20 || *p == 0x7f || *p == ';' || *p == '#')
			return false;
	return *v != '\0';
}

/* The --set value of key, or NULL. */
static const char *set_of(const struct setup *s, const char *key)
{
	size_t n = strlen(key);
	for (size_t i = 0; i < s->nsets; i++)
		if (strncmp(s->sets[i], key, n) == 0 && s->sets[i][n] == '=')
			return s->sets[i] + n + 1;
	return NULL;
}

static int parse_args(struct setup *s, int argc, char **argv)
{
	int pos = 0;
	s->test = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool more = i + 1 < argc;
		if (strcmp(a, "--force") == 0)
			s->force = true;
		else if (strcmp(a, "--test") == 0 || strcmp(a, "--no-test") == 0)
			s->test = a[2] == 't';
		else if (strcmp(a, "--browser") == 0 || strcmp(a, "--device") == 0)
			s->login_way = a;
		else if (strcmp(a, "--user") == 0 && more)
			s->user = argv[++i];
		else if (strcmp(a, "--client-id") == 0 && more)
			s->client_id = argv[++i];
		else if (strcmp(a, "--set") == 0 && more && s->nsets < SETS_MAX)
			s->sets[s->nsets++] = argv[++i];
		else if (a[0] == '-' || pos == 2)
			return usage();
		else if (pos++ == 0)
			s->p = provider_find(a);
		else
			s->address = a;
		if (pos == 1 && !s->p) {
			fprintf(stderr, "outbox setup: unknown provider '%s'\n", a);
			return usage();
		}
	}
	if (pos != 2)
		return usage();
	struct err e;
	if (addr_check(s->address, &e) < 0 || !strchr(s->address, '@')) {
		fprintf(stderr, "outbox setup: '%s' is not a mail address\n", s->address);
		return EX_USAGE;
	}
	if ((s->user && !ini_safe(s->user)) || (s->client_id && !ini_safe(s->client_id))) {
		fprintf(stderr, "outbox setup: --user and --client-id take one line, without ; or #\n");
		return EX_USAGE;
	}
	for (size_t i = 0; i < s->nsets; i++) {
		const char *eq = strchr(s->sets[i], '=');
		size_t klen = eq ? (size_t)(eq - s->sets[i]) : 0;
		if (!eq || klen == 0 || strspn(s->sets[i], "abcdefghijklmnopqrstuvwxyz0123456789_") != klen
		    || !ini_safe(eq + 1)) {
			fprintf(stderr, "outbox setup: --set %s: KEY=VALUE, on one line, without ; or #\n",
				s->sets[i]);
			return EX_USAGE;
		}
	}
	return 0;
}

static bool uses_oauth2(const struct setup *s)
{
	return s->p->login == PL_OAUTH2 || s->client_id || set_of(s, "oauth2_client_id");
}

/* key = value, the --set one instead when given */
static void put_key(struct buf *b, const struct setup *s, const char *key, const char *value)
{
	const char *v = set_of(s, key);
	buf_printf(b, "%s = %s\n", key, v ? v : value);
}

/* Run program (a helper's path, or this one) with args; its exit
 * status, or -1. */
static int run(const char *path, char *const args[])
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		execv(path, args);
		fprintf(stderr, "outbox setup: cannot run %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int run_helper(const char *name, const char *conf, const char *verb, const char *arg)
{
	char path[4200];
	if (helper_path(name, path, sizeof path) < 0)
		return -1;
	char *args[] = { path, "-C", (char *)conf, (char *)verb, (char *)arg, NULL };
	return run(path, args);
}

/* The secret for a password or API key provider, into its file. */
static int store_secret(const struct setup *s, const char *path, gid_t gid, char **secret)
{
	char prompt[300];
	struct err e;
	snprintf(prompt, sizeof prompt, "%s for %s", s->p->secret_name, s->address);
	*secret = ask(prompt, true);
	if (!*secret || !**secret) {
		fprintf(stderr, "outbox setup: no %s given\n", s->p->secret_name);
		return EX_USAGE;
	}
	if (s->p->user == PU_SECRET && !ini_safe(*secret)) {
		fprintf(stderr, "outbox setup: that %s cannot be a user name\n", s->p->secret_name);
		return EX_USAGE;
	}
	char *text = xasprintf("%s\n", *secret);
	int rc = setup_write_file(path, text, strlen(text), gid, true, &e);
	secret_free(text);
	if (rc < 0) {
		fprintf(stderr, "outbox setup: %s\n", e.msg);
		return EX_CANTCREAT;
	}
	printf("The %s is in %s (root, group of the daemon, 0640).\n", s->p->secret_name, path);
	return 0;
}

/* The snippet's text; the secret (Postmark's user) when it needs it. */
static void snippet_text(struct buf *b, const struct setup *s, const char *secret_file, const char *token_file,
			 const char *client_id, const char *secret)
{
	buf_printf(b, "; written by outbox setup %s %s (outbox(1)); `outbox config` shows every\n"
		      "; value and where it comes from, the preset's marked \"# provider\".\n[relay]\n",
		   s->p->name, s->address);
	bool user = s->user || s->p->user != PU_PRESET;	/* (else the preset's, or --set's) */
	put_key(b, s, "provider", s->p->name);
	if (user)
		put_key(b, s, "user", s->user ? s->user : s->p->user == PU_SECRET ? secret : s->address);
	if (uses_oauth2(s)) {
		put_key(b, s, "oauth2_client_id", client_id);
		put_key(b, s, "oauth2_refresh_token_file", token_file);
	} else {
		put_key(b, s, "password_file", secret_file);
	}
	for (size_t i = 0; i < s->nsets; i++) {
		const char *k = s->sets[i];
		size_t n = strcspn(k, "=");
		bool o = uses_oauth2(s), mine = false;	/* written above, with the --set value */
		const char *const ours[] = { "provider", user ? "user" : "", o ? "oauth2_client_id" : "password_file",
					     o ? "oauth2_refresh_token_file" : "" };
		for (size_t j = 0; j < sizeof ours / sizeof *ours; j++)
			mine |= strlen(ours[j]) == n && strncmp(ours[j], k, n) == 0;
		if (!mine)
			buf_printf(b, "%.*s = %s\n", (int)n, k, k + n + 1);
	}
}

static const struct relay *default_relay(const struct config *c)
{
	for (size_t i = 0; i < c->nrelays; i++)
		if (!*c->relays[i]->name)
			return c->relays[i];
	return c->relays[0];	/* (there is always a [relay]: config.c makes one) */
}

/* A file elsewhere that sets host or port wins over the preset: say so. */
static void warn_overrides(const struct setup *s, const struct config *c)
{
	const struct relay *r = default_relay(c);
	for (const struct preset_value *v = s->p->values; r && v->key; v++) {
		bool host = strcmp(v->key, "host") == 0;
		if ((!host && strcmp(v->key, "port") != 0) || set_of(s, v->key))
			continue;
		char have[32];
		snprintf(have, sizeof have, "%llu", (unsigned long long)r->port);
		if (strcmp(host ? r->host : have, v->value) != 0)
			printf("note: %s = %s is set in another file and wins over the preset's %s "
			       "(outbox config shows where): remove it there.\n", v->key, host ? r->host : have,
			       v->value);
	}
}

static void test_message(const struct setup *s, const char *conf)
{
	char self[4200], host[256];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return;
	self[n] = '\0';
	char *msg = xasprintf("From: %s\nTo: %s\nSubject: outbox setup: a test message from %s\n\n"
			      "outbox setup %s sent this through %s.\n", s->address, s->address,
			      local_hostname(host, sizeof host), s->p->name, s->p->title);
	int fds[2];
	if (pipe(fds) < 0) {
		free(msg);
		return;
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fds[0], 0);
		close(fds[0]);
		close(fds[1]);
		execl(self, "outbox", "-C", conf, "sendmail", "-i", "-f", s->address, "--", s->address,
		      (char *)NULL);
		_exit(127);
	}
	close(fds[0]);
	(void)write_all(fds[1], msg, strlen(msg));
	close(fds[1]);
	int status = 0;
	bool ok = pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
	printf(ok ? "A test message to %s is queued: outbox queue and the log follow it.\n"
		  : "The test message to %s could not be queued (above).\n", s->address);
	free(msg);
}

/* Login (OAuth2), then probe, reload and the test message; c as
 * checked, conf the configuration's real path. */
static int finish(const struct setup *s, const struct config *c, const char *conf)
{
	if (uses_oauth2(s)) {
		printf("\nLogging in to %s (outbox oauth2 login):\n", s->p->title);
		if (run_helper("oauth2", conf, "login", s->login_way) != 0) {
			printf("The login did not complete: run outbox oauth2 login when ready, then outbox "
			       "probe and systemctl reload outboxd.\n");
			return 1;
		}
	}
	printf("\nChecking the relay as outboxd will use it (outbox probe):\n");
	if (run_helper("probe", conf, "default", NULL) != 0) {
		printf("\nsetup: the probe failed (its last line says why); outboxd is not reloaded.  "
		       "Correct it, then outbox probe and systemctl reload outboxd.\n");
		return 1;
	}
	printf("\nsetup: the probe passed: outboxd can relay through %s.\n", s->p->title);
	bool running = setup_reload(c) == 0;
	int test = s->test;
	if (test < 0) {
		char *answer = ask("Send a test message to the address now? [y/N]", false);
		test = answer && (answer[0] == 'y' || answer[0] == 'Y');
		free(answer);
	}
	if (test && running)	/* (setup_reload returns once outboxd has the new configuration) */
		test_message(s, conf);
	return 0;
}

int setup_main(int argc, char **argv, const char *conf)
{
	struct setup s = { 0 };
	struct err e;
	int rc = parse_args(&s, argc, argv);
	if (rc)
		return rc;
	if (geteuid() != 0) {
		fprintf(stderr, "outbox setup: run it as root: it writes the configuration\n");
		return EX_NOPERM;
	}
	struct config *cf = tool_config(conf);
	uid_t uid;
	gid_t gid;
	if (access(cf->path, F_OK) < 0 || user_lookup(cf->queue.user, &uid, &gid, &e) < 0) {
		fprintf(stderr, "outbox setup: %s\n", access(cf->path, F_OK) < 0 ? "no configuration file "
			"(the package installs /etc/outbox/outbox.conf)" : e.msg);
		config_free(cf);
		return EX_CONFIG;
	}
	char *dir = xstrdup(cf->path), *slash = strrchr(dir, '/');
	if (slash)
		slash[slash == dir] = '\0';
	char *snippet = xasprintf("%s/outbox.conf.d/" SETUP_SNIPPET, slash ? dir : ".");
	char *secret_file = xasprintf("%s/%s.secret", slash ? dir : ".", s.p->name);
	char *token_file = xasprintf("/var/lib/outbox/%s-token", s.p->name);
	char *client_id = NULL, *secret = NULL;
	struct buf text, errors;
	buf_init(&text);
	buf_init(&errors);
	struct config *checked = NULL;
	rc = EX_USAGE;
	if (!s.force && access(snippet, F_OK) == 0) {
		fprintf(stderr, "outbox setup: %s exists: --force replaces it\n", snippet);
		rc = EX_CANTCREAT;
		goto out;
	}
	if (uses_oauth2(&s) && !s.client_id && !set_of(&s, "oauth2_client_id")) {
		client_id = ask("OAuth2 client (application) ID of your app registration", false);
		if (!client_id || !ini_safe(client_id))
			goto out;
	}
	const char *secret_path = set_of(&s, "password_file") ? set_of(&s, "password_file") : secret_file;
	bool new_secret = !uses_oauth2(&s) && access(secret_path, F_OK) < 0;
	if (!uses_oauth2(&s) && (rc = store_secret(&s, secret_path, gid, &secret)) != 0)
		goto out;
	snippet_text(&text, &s, secret_file, set_of(&s, "oauth2_refresh_token_file") ? set_of(&s,
		     "oauth2_refresh_token_file") : token_file, s.client_id ? s.client_id : client_id, secret);
	checked = setup_install_snippet(cf->path, text.data, gid, s.force, &errors, &e);
	if (!checked) {
		fprintf(stderr, "outbox setup: %s\n%s", e.msg, errors.data ? errors.data : "");
		rc = e.sys == EEXIST ? EX_CANTCREAT : EX_CONFIG;
		if (new_secret && unlink(secret_path) == 0)	/* nothing of a refused set-up stays */
			fprintf(stderr, "outbox setup: %s removed again\n", secret_path);
		goto out;
	}
	printf("%s written (root, group of the daemon, 0640), the configuration checked.\n", snippet);
	warn_overrides(&s, checked);
	if (uses_oauth2(&s) && setup_token_dir(default_relay(checked)->oauth2_refresh_token_file, uid, gid, &e) < 0) {
		fprintf(stderr, "outbox setup: %s\n", e.msg);
		rc = EX_CANTCREAT;
		goto out;
	}
	rc = finish(&s, checked, cf->path);
out:
	config_free(checked);
	secret_free(secret);
	secret_free(text.data);	/* (Postmark's token is its user) */
	buf_free(&errors);
	free(client_id);
	free(token_file);
	free(secret_file);
	free(snippet);
	free(dir);
	config_free(cf);
	return rc;
}
