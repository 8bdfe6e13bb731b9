/*
 * auth_hint_stub.c - TEMPORARY, for branch h-relaystate alone: a weak
 * smtp_auth_hint() until the real one (common/smtp_client.c, the hint
 * table beside the quota table, branch h-replies) is merged; the real,
 * strong definition wins at link time.  The lead deletes this file at
 * the merge.  It knows the three replies issue 21 names, so that the
 * status and log tests of h-relaystate run before the merge.
 */
#include <stddef.h>
#include <string.h>

#include "pool_int.h"

__attribute__((weak)) const char *smtp_auth_hint(const char *reply)
{
	if (!reply)
		return NULL;
	if (strstr(reply, "5.7.139"))
		return "basic authentication is disabled: switch to OAuth2 with `outbox setup microsoft365`";
	if (strncmp(reply, "534", 3) == 0 && strstr(reply, "5.7.9"))
		return "the account wants an application-specific password: make an app password";
	if (strncmp(reply, "535", 3) == 0 && strstr(reply, "5.7.8"))
		return "the relay refused the credentials: check password_file";
	return NULL;
}
