/* spool_env.h - a fresh spool directory under /tmp for a unit test
 * (mkdtemp: prefix, then six random characters), and its removal. */
#ifndef OUTBOX_TEST_SPOOL_ENV_H
#define OUTBOX_TEST_SPOOL_ENV_H

#include <stdlib.h>
#include <string.h>

#include "unit.h"

static void make_spool(char dir[64], const char *prefix)
{
	snprintf(dir, 64, "%s", prefix);
	size_t n = strlen(dir);
	assert_true(n + 6 < 64);
	memset(dir + n, 'X', 6);	/* mkdtemp's template */
	dir[n + 6] = '\0';
	assert_non_null(mkdtemp(dir));
}

static void remove_spool(const char *dir)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

#endif
