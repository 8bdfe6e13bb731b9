/*
 * privs.h - the root start of outboxd (privs.c): prepare the spool and
 * socket directories without following links, then become [queue] user.
 */
#ifndef OUTBOXD_PRIVS_H
#define OUTBOXD_PRIVS_H

#include "../common/config.h"

/* Started as root: make and check the daemon's directories (exit 78
 * naming one that is a link or someone else's) and become [queue] user
 * for good.  Started as another user: nothing. */
void drop_privileges(const struct config *c);

#endif
