/*
 * become.h - becoming [queue] user: how outboxd started as root, and the
 * tools started as root that touch the daemon's files (outbox probe,
 * outbox oauth2), take the daemon's identity, so that they read and
 * write what outboxd reads and writes, as outboxd does (SPEC "Local
 * users").
 *
 * Invariant: after user_become returns 0 the process's real, effective,
 * saved and file-system uids and gids are that user's, its supplementary
 * groups are that user's groups (initgroups, as systemd's User= gives
 * outboxd), it holds no capability, and it cannot become root again.
 */
#ifndef OUTBOX_BECOME_H
#define OUTBOX_BECOME_H

#include <sys/types.h>

#include "util.h"

/* The uid and primary gid of user name ([queue] user); -1 with e when
 * there is no such user or it is root (a configuration error). */
int user_lookup(const char *name, uid_t *uid, gid_t *gid, struct err *e);
/* Become name (uid, gid from user_lookup) for good; -1 with e. */
int user_become(const char *name, uid_t uid, gid_t gid, struct err *e);

#endif
