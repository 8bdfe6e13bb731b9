/*
 * outbox.c - entry point of the command-line tool: dispatch on the name
 * it was invoked by (sendmail) or on the subcommand.
 */
#include <errno.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "tool.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: outbox [-C FILE] sendmail [sendmail options] [recipient ...]\n"
		     "       outbox [-C FILE] probe [RELAY]\n"
		     "       outbox [-C FILE] oauth2 login [--browser | --device] [RELAY]\n"
		     "       outbox [-C FILE] setup PROVIDER ADDRESS [--set KEY=VALUE]... [--force] [--test|--no-test]\n"
		     "       outbox [-C FILE] send [-s SUBJECT] [-a FILE] [-i IMAGE] ... RECIPIENT ...\n"
		     "       outbox [-C FILE] queue [--json] | show ID | flush [ID...] | delete ID...\n"
		     "       outbox [-C FILE] hold ID... | release ID... | status [--json]\n"
		     "       outbox [-C FILE] config [-n] | metrics\n"
		     "       outbox -V\n"
		     "Invoked as 'sendmail' it is the sendmail-compatible command.\n");
}

/* Commands SPEC names that this version does not have yet: a clear
 * message and EX_UNAVAILABLE rather than a usage error. */
/*
 * `outbox probe` and `outbox oauth2` are separate programs, so that the
 * sendmail path does not load the TLS or HTTP libraries at every exec
 * (TLS cost W1 a quarter of a millisecond).  Each lives next to this
 * binary in the build tree as outbox-NAME, and in ../libexec/outbox/NAME
 * once installed.
 */
static int run_helper(const char *name, int argc, char **argv, const char *conf)
{
	char path[4200];
	if (helper_path(name, path, sizeof path) < 0)
		return EX_OSERR;
	char **args = tool_helper_argv(path, conf, argc, argv, 1);	/* without "probe" */
	execv(path, args);
	free(args);
	fprintf(stderr, "outbox: cannot run %s: %s\n", path, strerror(errno));
	return EX_UNAVAILABLE;
}

/* outbox config [-n]: the configuration file as outboxd reads it. */
static int print_config(int argc, char **argv, const char *conf)
{
	bool changed = argc == 2 && strcmp(argv[1], "-n") == 0;
	if (argc > 2 || (argc == 2 && !changed)) {
		fprintf(stderr, "usage: outbox config [-n]\n");
		return EX_USAGE;
	}
	struct config *cf = tool_config(conf);
	config_print(cf, stdout, changed);
	config_free(cf);
	return 0;
}

int main(int argc, char **argv)
{
	const char *conf = NULL;
	char *name = basename(argv[0]);
	tool_drop_group();
	if (strcmp(name, "sendmail") == 0)
		return sendmail_main(argc, argv, NULL);
	if (strcmp(name, "mailq") == 0)
		return control_main("mailq", argc - 1, argv + 1, NULL);
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-C") == 0 && i + 1 < argc) {
			conf = argv[++i];
		} else if (strcmp(argv[i], "-V") == 0) {
			printf("outbox %s\n", OUTBOX_VERSION);
			return 0;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return EX_USAGE;
	}
	if (strcmp(argv[i], "sendmail") == 0)
		return sendmail_main(argc - i, argv + i, conf);
	if (strcmp(argv[i], "probe") == 0 || strcmp(argv[i], "oauth2") == 0)
		return run_helper(argv[i], argc - i, argv + i, conf);
	if (strcmp(argv[i], "send") == 0)
		return send_main(argc - i, argv + i, conf);
	if (strcmp(argv[i], "setup") == 0)
		return setup_main(argc - i, argv + i, conf);
	if (strcmp(argv[i], "config") == 0)
		return print_config(argc - i, argv + i, conf);
	static const char *const queue_tools[] = { "queue", "show", "flush", "delete", "hold",
						   "release", "status", "metrics" };
	for (size_t k = 0; k < sizeof queue_tools / sizeof *queue_tools; k++)
		if (strcmp(argv[i], queue_tools[k]) == 0)
			return control_main(argv[i], argc - i - 1, argv + i + 1, conf);
	fprintf(stderr, "outbox: unknown command '%s'\n", argv[i]);
	usage(stderr);
	return EX_USAGE;
}
