/*
 * send_args.c - `outbox send` arguments (send_args.h).
 */
#include "send_args.h"

#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "../common/util.h"

static int bad(const char **what, const char **arg, const char *w, const char *a)
{
	*what = w;
	*arg = a;
	return EX_USAGE;
}

int send_parse_args(int argc, char **argv, struct send_opts *o, const char **what, const char **arg)
{
	memset(o, 0, sizeof *o);
	size_t cap = (size_t)(argc > 0 ? argc : 1);
	o->attach = xcalloc(cap, sizeof *o->attach);
	o->inline_img = xcalloc(cap, sizeof *o->inline_img);
	o->to = xcalloc(cap, sizeof *o->to);
	o->cc = xcalloc(cap, sizeof *o->cc);
	o->bcc = xcalloc(cap, sizeof *o->bcc);
	bool options = true;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!options || a[0] != '-' || !a[1]) {
			o->to[o->nto++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			options = false;
			continue;
		}
		if (strcmp(a, "--dry-run") == 0 || strcmp(a, "-n") == 0) {
			o->dry_run = true;
			continue;
		}
		if (strcmp(a, "-v") == 0) {
			o->verbose = true;
			continue;
		}
		if (strlen(a) != 2 || !strchr("smafibc", a[1]))
			return bad(what, arg, "unknown option", a);
		if (i + 1 >= argc)
			return bad(what, arg, "a value is missing after", a);
		const char *v = argv[++i];
		switch (a[1]) {
		case 's':
			o->subject = v;
			break;
		case 'm':
			o->body_file = v;
			break;
		case 'f':
			o->from = v;
			break;
		case 'a':
			o->attach[o->nattach++] = v;
			break;
		case 'i':
			o->inline_img[o->ninline++] = v;
			break;
		case 'c':
			o->cc[o->ncc++] = v;
			break;
		case 'b':
			o->bcc[o->nbcc++] = v;
			break;
		}
	}
	if (o->nto + o->ncc + o->nbcc == 0 && !o->dry_run)
		return bad(what, arg, "no recipient given", NULL);
	return 0;
}

void send_opts_free(struct send_opts *o)
{
	free(o->attach);
	free(o->inline_img);
	free(o->to);
	free(o->cc);
	free(o->bcc);
	memset(o, 0, sizeof *o);
}
