/*
 * toolconf.c - where the command-line programs (outbox, outbox-probe)
 * find their configuration: -C FILE, else $OUTBOX_CONF, else the default
 * path, which may be missing (then defaults apply).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>

#include "tool.h"

struct config *tool_config(const char *path)
{
	unsigned flags = CONF_CLIENT;
	if (!path)
		path = getenv("OUTBOX_CONF");
	if (!path || !*path) {
		path = OUTBOX_DEFAULT_CONF;
		flags |= CONF_MISSING_OK;
	}
	struct buf errors;
	buf_init(&errors);
	struct config *c = config_load(path, flags, &errors);
	if (!c) {
		fprintf(stderr, "outbox: configuration error:\n%s\n", errors.data);
		buf_free(&errors);
		exit(EX_CONFIG);
	}
	buf_free(&errors);
	return c;
}
