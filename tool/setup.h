/*
 * setup.h - the pieces of `outbox setup` (setup.c: the dialogue;
 * setup_files.c: what it writes and the daemon's reload).
 *
 * Every file written here is written whole or not at all: a temporary
 * name in the same directory (O_EXCL, O_NOFOLLOW), fsync, rename, fsync
 * of the directory; owner root, group the daemon's, mode 0640, so that
 * outboxd (as [queue] user) reads it and nobody else does.
 */
#ifndef OUTBOX_SETUP_H
#define OUTBOX_SETUP_H

#include <stdbool.h>
#include <sys/types.h>

#include "../common/config.h"

#define SETUP_SNIPPET "50-relay.conf"

/* Write text to path, root:gid 0640, atomically; replace an existing
 * file only with replace.  0, or -1 with e (EEXIST: it exists). */
int setup_write_file(const char *path, const char *text, size_t len, gid_t gid, bool replace, struct err *e);

/* Install text as outbox.conf.d/50-relay.conf beside the configuration
 * conf_path (the directory made 0755 when missing): first checked as
 * outboxd -t would check the configuration with it in place (a copy of
 * the set of files, by hard links, in a temporary directory beside
 * conf_path), then renamed into place (replacing one only with force).
 * The configuration as checked is returned (free it); NULL with the
 * problems in errors, or with e. */
struct config *setup_install_snippet(const char *conf_path, const char *text, gid_t gid, bool force,
				     struct buf *errors, struct err *e);

/* Make the directory of path for the daemon's user (0700, uid:gid) when
 * it is missing: where the OAuth2 refresh token goes. */
int setup_token_dir(const char *path, uid_t uid, gid_t gid, struct err *e);

/* Reload the outboxd that holds c's spool (the pid in SPOOL/lock, if it
 * is an outboxd): `systemctl reload outboxd` when systemd runs it, else
 * SIGHUP.  Says which on stdout.  0 when reloaded, 1 when none runs. */
int setup_reload(const struct config *c);

#endif
