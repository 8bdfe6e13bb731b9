/*
 * config_load.c - reading a configuration: the main file, then each
 * *.conf of outbox.conf.d/ by name (a later file's value replaces an
 * earlier one's), every file opened under the trust rule (conftrust.h).
 *
 * Line numbers: inih reports only the first error, so we feed it through
 * our own reader that counts lines and refuses over-long ones, and the
 * handler records every error with the current line.
 *
 * INVARIANT: a loaded config has every key set (defaults applied) and
 * passed every check (config_check.c); otherwise config_load returns
 * NULL with every error found.
 */
#include <dirent.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "address.h"
#include "config_keys.h"
#include "conftrust.h"


static void map_add(struct map *m, const char *name, const char *value, int line)
{
	m->v = xrealloc(m->v, (m->n + 1) * sizeof *m->v);
	m->v[m->n].name = xstrdup(name);
	m->v[m->n].value = xstrdup(value);
	m->v[m->n].line = line;
	m->n++;
}

/* [aliases] and [senders]; continuation lines append to an alias. */
static void handle_map(struct load_ctx *x, size_t mi, const char *name, const char *value)
{
	struct map *m = (struct map *)((char *)x->c + config_maps[mi].off);
	struct err e;
	int is_alias = strcmp(config_maps[mi].section, "aliases") == 0;

	if (!*name || strpbrk(name, "@ \t") || (!is_alias && strcmp(name, "*") != 0 && !addr_is_local_name(name))) {
		conf_error(x, config_maps[mi].section, name, "not a local name");
		return;
	}
	if (is_alias ? addr_list_check(value, &e) < 0 : addr_check(value, &e) < 0) {
		conf_error(x, config_maps[mi].section, name, "%s", e.msg);
		return;
	}
	for (size_t i = 0; i < m->n; i++) {
		if (strcasecmp(m->v[i].name, name) != 0)
			continue;
		if (m->v[i].file != x->file) {	/* a later file's entry replaces an earlier one's */
			free(m->v[i].value);
			m->v[i].value = xstrdup(value);
			m->v[i].line = x->line;
			m->v[i].file = x->file;
			return;
		}
		if (is_alias && m->v[i].line == x->line - 1) {
			char *joined = xasprintf("%s, %s", m->v[i].value, value);
			free(m->v[i].value);
			m->v[i].value = joined;
			m->v[i].line = x->line;
			return;
		}
		conf_error(x, config_maps[mi].section, name, "given twice (first on line %d)", m->v[i].line);
		return;
	}
	map_add(m, name, value, x->line);
	m->v[m->n - 1].file = x->file;
}

static int on_ini_entry(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *x = user;
	if (x->line_too_long)
		return 1;	/* already reported by the reader */
	if (is_relay_section(section)) {
		relay_entry(x, section, name, value);
		return 1;
	}
	for (size_t i = 0; i < config_nmaps; i++) {
		if (strcmp(section, config_maps[i].section) == 0) {
			handle_map(x, i, name, value);
			return 1;
		}
	}
	int known_section = 0;
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct key *k = &config_keys[i];
		if (strcmp(section, k->section) != 0 || relay_key(k))
			continue;
		known_section = 1;
		if (strcmp(name, k->name) != 0)
			continue;
		if (x->seen[i] && x->c->set_in[i] == x->file) {
			conf_error(x, section, name, "given twice");
			return 1;
		}
		x->seen[i] = x->line;	/* a later file's value replaces an earlier one's */
		x->c->set_in[i] = (short)x->file;
		const char *why = key_set_value(x->c, k, value);
		if (why)
			conf_error(x, section, name, "%s: '%s'", why, value);
		return 1;
	}
	if (known_section)
		conf_error(x, section, name, "unknown key");
	else
		conf_error(x, section, name, "unknown section [%s]", section);
	return 1;
}

/* fgets-style reader that counts lines and refuses lines inih would split. */
static char *ini_reader_counting(char *str, int num, void *stream)
{
	struct load_ctx *x = stream;
	if (!fgets(str, num, x->fp))
		return NULL;
	x->line++;
	x->line_too_long = 0;
	size_t n = strlen(str);
	if (n == (size_t)num - 1 && str[n - 1] != '\n' && !feof(x->fp)) {
		int ch;
		while ((ch = fgetc(x->fp)) != EOF && ch != '\n')
			;
		conf_error(x, NULL, NULL, "line longer than %d characters", num - 2);
		x->line_too_long = 1;
		str[0] = '\0';
	}
	return str;
}

/* Read one file (the main one or a snippet) into x->c; fd was opened
 * under the trust rule (conftrust.h) and is closed here. */
static void read_file(struct load_ctx *x, int fd)
{
	FILE *fp = fdopen(fd, "r");
	if (!fp) {
		x->line = 0;
		conf_error(x, NULL, NULL, "%s", strerror(errno));
		close(fd);
		return;
	}
	x->fp = fp;
	x->line = 0;
	x->last_error_line = 0;
	int rc = ini_parse_stream(ini_reader_counting, x, on_ini_entry, x);
	if (rc > 0 && rc != x->last_error_line) {
		x->line = rc;
		conf_error(x, NULL, NULL, "syntax error (expected [section] or key = value)");
	}
	fclose(fp);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.conf names in the directory d, by name; NULL-ended. */
static char **snippet_names(DIR *d)
{
	char **list = xcalloc(1, sizeof *list);
	size_t n = 0;
	for (struct dirent *de; d && (de = readdir(d));) {
		size_t len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".conf") != 0)
			continue;	/* not *.conf (editor backups, .dpkg-dist and the like) */
		list = xrealloc(list, (n + 2) * sizeof *list);
		list[n++] = xstrdup(de->d_name);
		list[n] = NULL;
	}
	qsort(list, n, sizeof *list, by_name);
	return list;
}

static void add_file(struct config *c, const char *path)
{
	c->files = xrealloc(c->files, (c->nfiles + 1) * sizeof *c->files);
	c->files[c->nfiles++] = xstrdup(path);
}

/* outbox.conf.d/ beside path, itself under the trust rule, and each
 * *.conf in it, opened through the directory's descriptor. */
static void read_snippets(struct load_ctx *x, const char *path)
{
	char *copy = xstrdup(path), *slash = strrchr(copy, '/');
	char *dir = xasprintf("%s/outbox.conf.d", slash ? (*slash = '\0', *copy ? copy : "/") : ".");
	struct err e;
	int fd = conf_open_dir(dir, &e);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	x->line = 0;
	x->path = dir;	/* what the errors below are about */
	if (fd < 0 && errno != ENOENT)
		conf_error(x, NULL, NULL, "%s", e.msg);
	else if (fd >= 0 && !d)
		conf_error(x, NULL, NULL, "cannot read it: %s", strerror(errno));
	if (fd >= 0 && !d)
		close(fd);
	char **names = snippet_names(d);
	for (char **p = names; *p; p++) {
		x->file = (int)x->c->nfiles;
		char *full = xasprintf("%s/%s", dir, *p);
		add_file(x->c, full);
		free(full);
		x->path = x->c->files[x->file];
		int sfd = conf_open_at(dirfd(d), *p, x->path, &e);
		if (sfd < 0) {
			x->line = 0;
			conf_error(x, NULL, NULL, "%s", e.msg);
		} else {
			read_file(x, sfd);
		}
		free(*p);
	}
	free(names);
	if (d)
		closedir(d);
	free(dir);
	free(copy);
}

struct config *config_load(const char *path, unsigned flags, struct buf *errors)
{
	int seen[config_nkeys];	/* (a VLA of the table's size) */
	struct load_ctx x = { .path = path, .seen = seen };
	struct err e;
	memset(seen, 0, sizeof seen);
	x.c = xcalloc(1, sizeof *x.c);
	x.c->refs = 1;
	x.c->path = xstrdup(path);
	x.c->set_in = xcalloc(config_nkeys, sizeof *x.c->set_in);
	for (size_t i = 0; i < config_nkeys; i++)
		x.c->set_in[i] = -1;
	add_file(x.c, path);
	config_apply_defaults(x.c);
	buf_init(&x.errors);

	int fd = conf_open_file(path, &e);
	if (fd < 0) {
		if (errno == ENOENT && (flags & CONF_MISSING_OK)) {
			relays_finish(&x);
			buf_free(&x.errors);
			return x.c;
		}
		if (errors)
			buf_printf(errors, "%s: %s", path, e.msg);
		buf_free(&x.errors);
		config_free(x.c);
		return NULL;
	}
	read_file(&x, fd);
	read_snippets(&x, path);
	x.file = 0;
	x.path = path;
	relays_finish(&x);
	check_combinations(&x, flags);
	check_aliases(&x);
	if (x.nerrors) {
		if (errors)
			buf_add(errors, x.errors.data, x.errors.len);
		buf_free(&x.errors);
		config_free(x.c);
		return NULL;
	}
	buf_free(&x.errors);
	return x.c;
}

static void map_free(struct map *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].name);
		free(m->v[i].value);
	}
	free(m->v);
}

void config_free(struct config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct key *k = &config_keys[i];
		if (!relay_key(k) && (k->type == KT_STRING || k->type == KT_PATH || k->type == KT_HOSTPORT))
			free(*FIELD(c, k, char *));
	}
	for (size_t i = 0; i < c->nrelays; i++)
		conf_relay_destroy(c->relays[i]);
	free(c->relays);
	for (size_t i = 0; i < c->nfiles; i++)
		free(c->files[i]);
	free(c->files);
	free(c->set_in);
	map_free(&c->aliases);
	map_free(&c->senders);
	free(c->path);
	free(c);
}

struct config *config_ref(struct config *c)
{
	c->refs++;
	return c;
}

void config_unref(struct config *c)
{
	if (c && --c->refs == 0)
		config_free(c);
}
