/*
 * tokens.c - the OAuth2 access token cache (tokens.h).
 *
 * Invariant: while an entry is dead (its refresh token refused with
 * invalid_grant), the helper is not run for it unless its refresh token
 * file's identity differs from the one seen before the refused request,
 * or the hold has passed; whoever asks gets the same "login needed"
 * error at once.
 *
 * With a state directory (outboxd's SPOOL/rate), a dead entry is also a
 * file there, NAME.login (relay names hold no '.', so it never meets a
 * rate file): the refused file's identity, when, why, and whether the
 * postmaster was told.  It is read when the entry is first asked for
 * (after a start or a reload) and removed only once a token was had
 * again -- not when the entry merely may ask again (file changed, hold
 * passed): "told" lasts until the relay recovered, across restarts too,
 * so a restart neither asks the endpoint with the refused token nor
 * tells the postmaster twice.  A file we cannot read or that is not ours
 * is ignored (one more request and notice, as without it).
 *
 * The hold is read without the mutex (an atomic): a worker holds the
 * mutex while the helper runs (up to HELPER_TIMEOUT_S), and the loop
 * sets the hold at a reload.
 */
#include "tokens.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "auth.h"
#include "log.h"

#define HELPER_TIMEOUT_S 90

/* What a file is, as far as a change of it matters. */
struct file_id {
	bool exists;
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
	off_t size;
};

struct cached {
	struct cached *next;
	char *relay, *token_url, *client_id;	/* what it is for */
	char *token;
	double expires;		/* wall clock */
	/* a dead refresh token: the file as it was when it was refused */
	bool dead;
	struct file_id file;
	double dead_at;		/* wall clock */
	bool told;		/* the postmaster was told (token_login_tell), until a
				 * token is had again */
	bool saved;		/* its state file may exist */
	char dead_why[420];
};

struct token_cache {
	uv_mutex_t mu;
	char *conf_path;
	atomic_llong hold_ms;	/* a dead token's file unchanged, the endpoint is not asked */
	char *state_dir;	/* where dead entries are remembered (NULL: in memory) */
	struct cached *list;
};

struct token_cache *token_cache_new(const char *conf_path)
{
	struct token_cache *c = xcalloc(1, sizeof *c);
	uv_mutex_init(&c->mu);
	c->conf_path = xstrdup(conf_path ? conf_path : "");
	atomic_init(&c->hold_ms, 3600 * 1000LL);
	return c;
}

void token_cache_set_state_dir(struct token_cache *c, const char *dir)
{
	uv_mutex_lock(&c->mu);
	free(c->state_dir);
	c->state_dir = dir ? xstrdup(dir) : NULL;
	uv_mutex_unlock(&c->mu);
}

void token_cache_set_hold(struct token_cache *c, double seconds)
{
	atomic_store(&c->hold_ms, (long long)(seconds * 1000));	/* (the loop: no mutex) */
}

const char *token_login_command(const struct relay *r, char *out, size_t n)
{
	snprintf(out, n, "outbox oauth2 login %s", *r->name ? r->name : "default");
	return out;
}

static void file_id_of(const char *path, struct file_id *id)
{
	struct stat st;
	memset(id, 0, sizeof *id);
	if (stat(path, &st) < 0)
		return;
	id->exists = true;
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->mtime = st.st_mtim;
	id->size = st.st_size;
}

static bool file_id_same(const struct file_id *a, const struct file_id *b)
{
	return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size
	       && a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* ---- a dead entry across restarts: STATE_DIR/NAME.login ----
 * "outbox-login 1", the refused file's identity with when and whether
 * told, the token URL and client ID it is for, and why: a line each. */

#define STATE_MAX 4096	/* octets: a longer file is not ours */

static char *state_path(const struct token_cache *c, const struct cached *t)
{
	return c->state_dir ? xasprintf("%s/%s.login", c->state_dir, *t->relay ? t->relay : "default") : NULL;
}

/* Write t's state (remove it when t lives).  Best effort: a failure is
 * logged and costs one more request and notice after a restart. */
static void state_save(const struct token_cache *c, struct cached *t)
{
	char *path = state_path(c, t);
	if (!path)
		return;
	if (!t->dead) {
		if (unlink(path) < 0 && errno != ENOENT)
			log_warn("%s: %s", path, strerror(errno));
		t->saved = false;
		free(path);
		return;
	}
	t->saved = true;
	char *tmp = xasprintf("%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	bool ok = f != NULL;
	if (ok) {
		const struct file_id *id = &t->file;
		fprintf(f, "outbox-login 1\n%d %ju %ju %lld %ld %lld %.3f %d\n%s\n%s\n%s\n", id->exists,
			(uintmax_t)id->dev, (uintmax_t)id->ino, (long long)id->mtime.tv_sec, id->mtime.tv_nsec,
			(long long)id->size, t->dead_at, t->told, t->token_url, t->client_id, t->dead_why);
		ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
		ok = fclose(f) == 0 && ok;
	} else if (fd >= 0) {
		close(fd);
	}
	if (!ok || rename(tmp, path) < 0) {
		log_warn("%s: %s: a restart will ask the token endpoint once more", path, strerror(errno));
		unlink(tmp);
	}
	free(tmp);
	free(path);
}

/* One line of f into out (n octets) without its newline; false when
 * there is none or it is longer. */
static bool state_line(FILE *f, char *out, size_t n)
{
	if (!fgets(out, (int)n, f))
		return false;
	size_t len = strlen(out);
	if (len == 0 || out[len - 1] != '\n')
		return false;
	out[len - 1] = '\0';
	return true;
}

/* t (new) from its file, when there is one for this very endpoint and
 * client: then it is dead as it was before the restart. */
static void state_load(const struct token_cache *c, struct cached *t)
{
	char *path = state_path(c, t);
	if (!path)
		return;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	FILE *f = NULL;
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() && st.st_size < STATE_MAX)
		f = fdopen(fd, "r");
	if (!f) {
		if (fd >= 0)
			close(fd);
		free(path);
		return;
	}
	char head[32], ids[256], url[STATE_MAX], client[STATE_MAX], why[sizeof t->dead_why];
	struct file_id id = { 0 };
	uintmax_t dev, ino;
	long long sec, size;
	int exists, told;
	double at;
	bool ok = state_line(f, head, sizeof head) && strcmp(head, "outbox-login 1") == 0
		  && state_line(f, ids, sizeof ids)
		  && sscanf(ids, "%d %ju %ju %lld %ld %lld %lf %d", &exists, &dev, &ino, &sec, &id.mtime.tv_nsec,
			    &size, &at, &told) == 8
		  && state_line(f, url, sizeof url) && state_line(f, client, sizeof client)
		  && state_line(f, why, sizeof why);
	fclose(f);
	if (ok && strcmp(url, t->token_url) == 0 && strcmp(client, t->client_id) == 0) {
		id.exists = exists != 0;
		id.dev = (dev_t)dev;
		id.ino = (ino_t)ino;
		id.mtime.tv_sec = (time_t)sec;
		id.size = (off_t)size;
		t->dead = t->saved = true;
		t->file = id;
		t->dead_at = at;
		t->told = told != 0;
		snprintf(t->dead_why, sizeof t->dead_why, "%s", why);
	} else if (unlink(path) < 0) {	/* another endpoint's, or not readable: no longer of use */
		log_warn("%s: %s", path, strerror(errno));
	}
	free(path);
}

/* Did the endpoint refuse the refresh token itself?  The helper's error
 * is "URL: invalid_grant" with ": description" or nothing after it. */
static bool is_invalid_grant(const struct relay *r, const char *msg)
{
	size_t n = strlen(r->oauth2_token_url);
	const char *code = ": invalid_grant";
	if (strncmp(msg, r->oauth2_token_url, n) != 0 || strncmp(msg + n, code, strlen(code)) != 0)
		return false;
	char after = msg[n + strlen(code)];
	return after == '\0' || after == ':';
}

/* Is t dead still (locked)?  It comes back to life when its file
 * changed or the hold passed: the next request asks the endpoint. */
static bool still_dead(struct token_cache *c, const struct relay *r, struct cached *t)
{
	if (!t->dead)
		return false;
	struct file_id now_id;
	file_id_of(r->oauth2_refresh_token_file, &now_id);
	bool changed = !file_id_same(&now_id, &t->file);
	if (!changed && (now_real() - t->dead_at) * 1000 < (double)atomic_load(&c->hold_ms))
		return true;
	t->dead = false;	/* (its file and `told` stay until a token is had) */
	log_notice("relay %s: %s: the OAuth2 token endpoint is asked again", relay_label(r),
		   changed ? "the refresh token file changed" : "[queue] retry_max passed since the login was refused");
	return false;
}

void token_cache_free(struct token_cache *c)
{
	if (!c)
		return;
	for (struct cached *t = c->list, *n; t; t = n) {
		n = t->next;
		free(t->relay);
		free(t->token_url);
		free(t->client_id);
		secret_free(t->token);
		free(t);
	}
	uv_mutex_destroy(&c->mu);
	free(c->conf_path);
	free(c->state_dir);
	free(c);
}

static struct cached *entry_for(struct token_cache *c, const struct relay *r)
{
	for (struct cached *t = c->list; t; t = t->next)
		if (strcmp(t->relay, r->name) == 0 && strcmp(t->token_url, r->oauth2_token_url) == 0
		    && strcmp(t->client_id, r->oauth2_client_id) == 0)
			return t;
	struct cached *t = xcalloc(1, sizeof *t);
	t->relay = xstrdup(r->name);
	t->token_url = xstrdup(r->oauth2_token_url);
	t->client_id = xstrdup(r->oauth2_client_id);
	t->next = c->list;
	c->list = t;
	state_load(c, t);
	return t;
}

/* The helper's answer into t: its notes logged, its token kept. */
static int take_answer(const struct relay *r, struct cached *t, char *out, struct err *e)
{
	int rc = err_set(e, "outbox-oauth2 gave no answer");
	for (char *line = out, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (strncmp(line, "note ", 5) == 0) {
			log_info("relay %s: %s", relay_label(r), line + 5);
		} else if (strncmp(line, "error ", 6) == 0) {
			rc = err_set(e, "%.*s", (int)sizeof e->msg - 1, line + 6);
		} else if (strncmp(line, "ok ", 3) == 0) {
			char *end;
			long secs = strtol(line + 3, &end, 10);
			if (end == line + 3 || *end != ' ' || !end[1])
				return err_set(e, "outbox-oauth2 gave a malformed answer");
			secret_free(t->token);
			t->token = xstrdup(end + 1);
			t->expires = now_real() + (double)(secs > 0 ? secs : 3600);
			log_info("relay %s: OAuth2 access token obtained, valid for %ld s", relay_label(r),
				 secs > 0 ? secs : 3600);
			rc = 0;
		}
	}
	return rc;
}

static int fetch(struct token_cache *c, const struct relay *r, struct cached *t, struct err *e)
{
	char path[4200];
	if (helper_path("oauth2", path, sizeof path) < 0)
		return err_set(e, "cannot find the outbox-oauth2 helper");
	char *argv[] = { path, "-C", c->conf_path, "token", *r->name ? r->name : "default", NULL };
	char *out = NULL;
	if (run_capture(argv, HELPER_TIMEOUT_S, &out, e) < 0)
		return -1;
	int rc = take_answer(r, t, out, e);
	secret_free(out);
	return rc;
}

/* The endpoint refused t's refresh token, read from the file `was`. */
static void mark_dead(struct token_cache *c, const struct relay *r, struct cached *t, const struct file_id *was,
		      const char *msg)
{
	char cmd[80];
	t->dead = true;	/* (`told` stays: it was not had since) */
	t->file = *was;
	t->dead_at = now_real();
	secret_free(t->token);
	t->token = NULL;
	snprintf(t->dead_why, sizeof t->dead_why, "login needed (run `%s`): %.300s",
		 token_login_command(r, cmd, sizeof cmd), msg);
	state_save(c, t);
}

char *token_get(struct token_cache *c, const struct relay *r, bool fresh, struct err *e)
{
	char *out = NULL;
	uv_mutex_lock(&c->mu);
	struct cached *t = entry_for(c, r);
	if (still_dead(c, r, t)) {
		err_set(e, "%s", t->dead_why);
		uv_mutex_unlock(&c->mu);
		return NULL;
	}
	bool usable = t->token && !fresh && t->expires - now_real() > OAUTH2_REFRESH_AHEAD_S;
	struct file_id before;
	if (!usable)	/* before the request: a change during it is a change */
		file_id_of(r->oauth2_refresh_token_file, &before);
	if (usable || fetch(c, r, t, e) == 0) {
		out = xstrdup(t->token);
		if (t->saved || t->told) {	/* recovered: a later refusal is news again */
			t->told = false;
			state_save(c, t);
		}
	} else if (e && is_invalid_grant(r, e->msg))
		mark_dead(c, r, t, &before, e->msg);
	uv_mutex_unlock(&c->mu);
	return out;
}

bool token_login_needed(struct token_cache *c, const struct relay *r, char *why, size_t n)
{
	if (!c || !*r->oauth2_token_url)
		return false;
	uv_mutex_lock(&c->mu);
	struct cached *t = entry_for(c, r);
	bool dead = still_dead(c, r, t);
	if (dead)
		snprintf(why, n, "%s", t->dead_why);
	uv_mutex_unlock(&c->mu);
	return dead;
}

char *token_hook(void *arg, const struct relay *r, bool fresh, struct err *e)
{
	return token_get(arg, r, fresh, e);
}

bool token_login_told(struct token_cache *c, const struct relay *r, double *since)
{
	*since = 0;
	if (!c || !*r->oauth2_token_url)
		return false;
	uv_mutex_lock(&c->mu);
	struct cached *t = entry_for(c, r);
	if (t->dead)
		*since = t->dead_at;
	bool told = t->dead && t->told;
	uv_mutex_unlock(&c->mu);
	return told;
}

void token_login_tell(struct token_cache *c, const struct relay *r)
{
	if (!c || !*r->oauth2_token_url)
		return;
	uv_mutex_lock(&c->mu);
	struct cached *t = entry_for(c, r);
	if (t->dead && !t->told) {
		t->told = true;
		state_save(c, t);
	}
	uv_mutex_unlock(&c->mu);
}
