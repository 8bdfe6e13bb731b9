/*
 * send.c - `outbox send` (SPEC "Composing"): the text-and-images mail
 * of the original exercise.  The message is built by the helper
 * outbox-compose (tool/compose/, which has libmagic; this program, the
 * sendmail command, must not load it) and read back through a pipe;
 * then it goes the way `sendmail -t -i` sends (sendmail_message): the
 * recipients from To, Cc and Bcc with Bcc removed, the sender from -f
 * or the user's [senders] address, Date: and Message-ID: added, and
 * pickup/ when outboxd is down.  --dry-run prints the message instead.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "send_args.h"
#include "sendmail_args.h"
#include "tool.h"

/* Run the composer with our arguments; its stdout into out; its exit
 * status (or 70 when it could not run). */
static int compose(int argc, char **argv, const char *conf, struct buf *out, uint64_t limit)
{
	char path[4200];
	if (helper_path("compose", path, sizeof path) < 0)
		return EX_SOFTWARE;
	int fds[2];
	if (pipe(fds) < 0)
		return EX_OSERR;
	pid_t pid = fork();
	if (pid < 0)
		return EX_OSERR;
	if (pid == 0) {
		char **args = tool_helper_argv(path, conf, argc, argv, 0);	/* with "send" */
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execv(path, args);
		fprintf(stderr, "outbox: cannot run %s: %s\n", path, strerror(errno));
		_exit(EX_UNAVAILABLE);
	}
	close(fds[1]);
	char chunk[65536];
	ssize_t n;
	bool too_big = false;
	while ((n = read(fds[0], chunk, sizeof chunk)) > 0 || (n < 0 && errno == EINTR)) {
		if (n < 0)
			continue;
		if (out->len + (size_t)n > limit)
			too_big = true;
		else
			buf_add(out, chunk, (size_t)n);
	}
	close(fds[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (too_big) {
		fprintf(stderr, "outbox send: the message is larger than [queue] max_message_size\n");
		return EX_DATAERR;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : EX_SOFTWARE;
}

int send_main(int argc, char **argv, const char *conf)
{
	struct send_opts o;
	const char *what, *arg;
	if (send_parse_args(argc, argv, &o, &what, &arg)) {
		fprintf(stderr, "outbox send: %s%s%s\nusage: outbox send [-s SUBJECT] [-m FILE] [-a FILE]... "
				"[-i IMAGE]... [-c ADDR]... [-b ADDR]... [-f FROM] [--dry-run] RCPT...\n",
			what, arg ? " " : "", arg ? arg : "");
		send_opts_free(&o);
		return EX_USAGE;
	}
	struct config *cf = tool_config(conf);
	struct buf msg;
	buf_init(&msg);
	int rc = compose(argc, argv, conf, &msg, cf->queue.max_message_size);
	if (rc == 0 && o.dry_run) {
		if (fwrite(msg.data ? msg.data : "", 1, msg.len, stdout) != msg.len)
			rc = EX_IOERR;
	} else if (rc == 0) {
		/* -f "Name <addr>": the envelope takes the address */
		char *from = o.from && strchr(o.from, '<') ? xstrndup(strchr(o.from, '<') + 1,
								      strcspn(strchr(o.from, '<') + 1, ">"))
							   : NULL;
		struct sendmail_opts so = { .mode = SM_SEND, .t = true, .i = true, .verbose = o.verbose,
					    .from = from ? from : o.from };
		rc = sendmail_message(cf, &so, msg.data, msg.len);
		free(from);
	}
	buf_free(&msg);
	send_opts_free(&o);
	config_free(cf);
	return rc;
}
