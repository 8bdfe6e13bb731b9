/*
 * config_keys.h - the configuration's private parts, shared by its
 * files (the module's users have config.h):
 *   config_keys.c   the key table, reading a value of each type, maps
 *   config_ctx.c    where a loading error is reported
 *   config_load.c   reading the files, inih, outbox.conf.d/
 *   config_relay.c  [relay] and [relay.NAME], presets, the relay list
 *   config_check.c  the rules across keys
 *   config_print.c  outboxd -t -v and outbox config
 * and man/confdoc.c, which makes outbox.conf(5) from the table.
 */
#ifndef OUTBOX_CONFIG_KEYS_H
#define OUTBOX_CONFIG_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "relay.h"

enum key_type { KT_STRING, KT_PATH, KT_DURATION, KT_SIZE, KT_UINT, KT_BOOL, KT_MODE, KT_ENUM, KT_HOSTPORT };

/* Where a key's value lands: struct config, or a struct relay of
 * [relay] and every [relay.NAME] (section "relay"), or of the named
 * relays only (section "relay.NAME"). */
enum key_home { IN_CONFIG, IN_RELAY, IN_NAMED };

struct key {
	const char *section;
	const char *name;
	enum key_type type;
	const char *def;
	size_t off;
	const char *const *choices;	/* KT_ENUM: index = stored value */
	uint64_t min, max;		/* KT_UINT, KT_DURATION, KT_SIZE */
	const char *doc;
};

#define FIELD(base, k, T) ((T *)((char *)(base) + (k)->off))
#define SET_BY_PRESET (-2)	/* set_in[k] of a value the relay's provider gave it */

extern const struct key config_keys[];
extern const size_t config_nkeys;

/* Sections that hold free-form name = value maps. */
struct map_doc {
	const char *section;
	size_t off;
	const char *doc;
};
extern const struct map_doc config_maps[];
extern const size_t config_nmaps;

enum key_home key_home_of(const struct key *k);
bool relay_key(const struct key *k);
/* Keys whose value is a secret: outbox config shows "(set)". */
bool key_is_secret(const struct key *k);
/* Store value v for key k in c (a struct config, or a struct relay for
 * the relay keys); returns an error message or NULL. */
const char *key_set_value(void *c, const struct key *k, const char *v);
void config_apply_defaults(struct config *c);

/* Loading: the state of one config_load(). */
struct load_ctx {
	struct config *c;
	FILE *fp;
	const char *path;	/* the file being read, or that an error is about */
	int file;		/* its index in c->files */
	int line;
	int line_too_long;
	int *seen;		/* config_nkeys: line where each key was set (in c->set_in[i]) */
	struct buf errors;
	int nerrors;
	int last_error_line;
};

/* config_ctx.c: an error at x's file and line; about a key as a whole,
 * at the line that set it (key_line points x there). */
void conf_error(struct load_ctx *x, const char *section, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void key_line(struct load_ctx *x, const char *section, const char *name);
void key_error(struct load_ctx *x, const char *section, const char *name, const char *msg);

/* config_relay.c */
struct relay *conf_relay_new(const char *name);
void conf_relay_destroy(struct relay *r);
bool is_relay_section(const char *section);
void relay_entry(struct load_ctx *x, const char *section, const char *name, const char *value);
void relay_error(struct load_ctx *x, const struct relay *r, const char *name, const char *msg);
void relays_finish(struct load_ctx *x);

/* config_check.c */
void check_combinations(struct load_ctx *x, unsigned flags);
void check_aliases(struct load_ctx *x);

#endif
