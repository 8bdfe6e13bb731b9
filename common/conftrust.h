/*
 * conftrust.h - the one rule by which every program (outboxd, outbox
 * and its helpers) trusts a configuration file: outbox.conf,
 * outbox.conf.d/ and each snippet in it.  A configuration runs
 * password_command and names the spool a root start prepares, so what
 * it says must come from root (SPEC "Local users").
 *
 * The rule, for the main file, the directory outbox.conf.d/ and every
 * snippet alike:
 *  - opened with O_NOFOLLOW and judged by fstat of the descriptor that
 *    was opened (never by a stat of the path): a symbolic link there is
 *    refused, never followed, whoever owns it;
 *  - a regular file (a directory for outbox.conf.d/);
 *  - owned by root; a run whose effective uid is not root also trusts
 *    its own files, except while it holds a group it was given
 *    (the set-group-ID outbox command reading with group outbox):
 *    then root's only;
 *  - writable by nobody but its owner: no group or other write bit.
 *
 * Nothing here reads [queue] user: whom the configuration names cannot
 * make the configuration trusted.
 */
#ifndef OUTBOX_CONFTRUST_H
#define OUTBOX_CONFTRUST_H

#include "util.h"

/* Open the configuration file path for reading under the rule: the
 * descriptor, or -1 with e saying why (the caller prefixes the path); a
 * missing file is -1 with errno ENOENT. */
int conf_open_file(const char *path, struct err *e);
/* The same for a snippet: name in the directory dirfd (conf_open_dir),
 * path its whole name for the messages. */
int conf_open_at(int dirfd, const char *name, const char *path, struct err *e);
/* The same for the directory outbox.conf.d/ (O_DIRECTORY). */
int conf_open_dir(const char *path, struct err *e);

#endif
