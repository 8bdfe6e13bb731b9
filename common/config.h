/*
 * config.h - outbox.conf, parsed with inih through one declarative table.
 *
 * Owns: the table of every section and key (type, default, where the
 * value lands in struct config, one line of documentation), parsing and
 * validation, and printing the effective configuration (`outboxd -t -v`,
 * `outbox config`) from that same table; man/confdoc.c makes the key
 * reference of outbox.conf(5) from it.  The files of the module are
 * listed in config_keys.h, its private header.
 *
 * Invariants: a loaded config has every key set (defaults applied) and
 * has passed every check; errors name file, line and key.  The config is
 * immutable once loaded; SIGHUP loads a new one and swaps pointers.
 */
#ifndef OUTBOX_CONFIG_H
#define OUTBOX_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "relay.h"
#include "util.h"

#ifndef OUTBOX_DEFAULT_CONF	/* a build may say where (tests/outbox-runconf does) */
#define OUTBOX_DEFAULT_CONF "/etc/outbox/outbox.conf"
#endif
#define MAX_SESSIONS 1000	/* submission sessions open at once, at most */

enum tls_mode { TLS_STARTTLS, TLS_IMPLICIT, TLS_NONE };
enum auth_mode { AUTH_AUTO, AUTH_PLAIN, AUTH_LOGIN, AUTH_XOAUTH2, AUTH_OAUTHBEARER, AUTH_NONE };

/* A [aliases] or [senders] entry. */
struct map_entry {
	char *name;
	char *value;
	int line;
	int file;	/* index in config.files */
};

struct map {
	struct map_entry *v;
	size_t n;
};

struct config {
	_Atomic int refs;	/* config_load gives 1; delivery jobs take more */
	char *path;
	/* path, then each snippet of outbox.conf.d/ beside it, in the order
	 * read; set_in[k]: the file that set key k of the table (-1: its
	 * default) */
	char **files;
	size_t nfiles;
	short *set_in;
	struct {
		char *spool;
		char *user;
		uint64_t lifetime, retry_min, retry_max;
		uint64_t max_message_size;
		uint64_t max_recipients;
		uint64_t delay_warning;
		uint64_t report_interval;
		uint64_t min_free;
	} queue;
	struct {
		char *socket;
		uint64_t socket_mode;
		char *control;
		char *tcp;
		uint64_t idle_timeout;
		uint64_t max_sessions_per_user;
		int tcp_allow_remote;
	} listen;
	struct relay **relays;	/* [relay] and each [relay.NAME], by priority (relay.h) */
	size_t nrelays;
	struct {
		char *domain;
		char *postmaster;
	} address;
	struct map aliases;	/* local name -> "addr, addr" */
	struct map senders;	/* local user or "*" -> address */
	struct {
		int target;	/* enum log_target */
		int level;	/* enum log_level */
		char *metrics_file;
	} log;
};

/* Is a [listen] tcp address ("127.0.0.1:2525", "[::1]:2525") loopback? */
bool tcp_is_loopback(const char *spec);

/* Flags for config_load. */
#define CONF_CLIENT 0x1	/* the command-line tool: skip checks on secrets */
#define CONF_MISSING_OK 0x2	/* a missing file means all defaults */

/* Load and validate; NULL on error, with every problem appended to
 * errors (one a line, however many; errors may be NULL). */
struct config *config_load(const char *path, unsigned flags, struct buf *errors);
void config_free(struct config *c);
/* Shared ownership between the loop and delivery threads. */
struct config *config_ref(struct config *c);
void config_unref(struct config *c);

/* Print every key with its effective value, as an INI file. */
void config_dump(const struct config *c, FILE *out);
/* outbox config: every key and its value, "# default" after those that
 * are, secrets as "(set)"; with changed_only (-n) the others only. */
void config_print(const struct config *c, FILE *out, bool changed_only);

/* Look up a map entry by name (ASCII case-insensitive); NULL if none. */
const char *map_get(const struct map *m, const char *name);

const char *tls_mode_name(int mode);
const char *auth_mode_name(int mode);

#endif
