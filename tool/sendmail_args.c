/*
 * sendmail_args.c - the sendmail command line (sendmail_args.h).
 *
 * Options come first, up to "--" or the first argument that does not
 * start with '-' (a lone "-" is a recipient); the rest are recipients.
 * A flag that takes a value has it glued (-fuser) or as the next
 * argument (-f user).  Every flag Sendmail or Postfix documents that
 * outbox has no use for is accepted and ignored (the table below, which
 * outbox(1) repeats); anything else is a usage error (exit 64), so a
 * typo is not silently taken for a recipient or a mode.
 *
 * The DSN request (RFC 3461) is taken as Postfix's sendmail(1) takes it:
 * -N never, or a list of success, failure, delay (for every recipient);
 * -R full or hdrs; -V the envelope ID as text (printable ASCII), which
 * the command sends as xtext (sendmail_envid_xtext()).  A bad value is a
 * usage error.
 */
#include "sendmail_args.h"

#include <string.h>
#include <sysexits.h>

#include "../common/dsnparam.h"

const struct sendmail_ignored sendmail_ignored[] = {
	{ "-oem", false, "error mode (mail back): outbox reports by exit status, bounces come from outboxd" },
	{ "-oee", false, "error mode (mail back, exit 0)" },
	{ "-oep", false, "error mode (print)" },
	{ "-oeq", false, "error mode (quiet)" },
	{ "-oew", false, "error mode (write to the terminal)" },
	{ "-odb", false, "deliver in the background: outboxd always does, once the message is on disk" },
	{ "-odi", false, "deliver interactively: the exit status still means queued, not delivered" },
	{ "-odq", false, "queue only" },
	{ "-odd", false, "queue only, no DNS" },
	{ "-om", false, "send to me too: recipients are exactly those given" },
	{ "-oo", false, "old-style headers" },
	{ "-oX", false, "any other -oX or -oXvalue: a sendmail.cf option; outbox.conf has the settings" },
	{ "-B", true, "body type (7BIT, 8BITMIME): outbox sees 8-bit octets itself" },
	{ "-L", true, "syslog tag" },
	{ "-O", true, "option=value: a sendmail.cf option" },
	{ "-X", true, "traffic log file: never written by outbox (the command may run set-group-ID)" },
	{ "-h", true, "hop count (a relay's loop guard): outbox originates mail" },
	{ "-U", false, "initial user submission" },
	{ "-G", false, "gateway submission" },
	{ "-m", false, "send to me too (old form)" },
	{ "-n", false, "no aliasing: [aliases] always applies" },
	{ NULL, false, NULL },
};

static const struct sendmail_ignored *find_ignored(const char *a)
{
	const struct sendmail_ignored *f, *any_o = NULL;
	for (f = sendmail_ignored; f->flag; f++) {
		size_t n = strlen(f->flag);
		if (f->value ? strncmp(a, f->flag, n) == 0 : strcmp(a, f->flag) == 0)
			return f;
		if (strcmp(f->flag, "-oX") == 0)
			any_o = f;
	}
	return a[1] == 'o' && a[2] != '\0' ? any_o : NULL;	/* (-oi is taken before) */
}

/* -X VALUE or -XVALUE; the value (and *i moved past it), or NULL. */
static const char *option_value(int argc, char **argv, int *i)
{
	if (argv[*i][2])
		return argv[*i] + 2;
	if (*i + 1 < argc)
		return argv[++*i];
	return NULL;
}

static int bad(const char **what, const char **arg, const char *w, const char *a)
{
	*what = w;
	*arg = a;
	return EX_USAGE;
}

/* The flags with a value that mean something: -f, -r, -F, -C. */
static int valued(int argc, char **argv, int *i, struct sendmail_opts *o, const char **what,
		  const char **arg)
{
	const char *a = argv[*i], *v = option_value(argc, argv, i);
	if (!v)
		return bad(what, arg, "option needs a value", a);
	if (a[1] == 'f' || a[1] == 'r') {
		if (o->from)
			return bad(what, arg, "more than one sender", a);
		o->from = v;
	} else if (a[1] == 'F') {
		o->fullname = v;
	} else {
		o->conf = v;
	}
	return 0;
}

/* -V's text: printable ASCII, at most DSN_ENVID_VALUE_MAX once xtext. */
static bool envid_ok(const char *v)
{
	size_t n = 0;
	for (const char *p = v; *p; p++) {
		if (*p < 0x20 || *p > 0x7e)
			return false;
		n += *p > ' ' && *p != '+' && *p != '=' ? 1 : 3;
	}
	return n > 0 && n <= DSN_ENVID_VALUE_MAX;
}

/* -N, -R, -V: the DSN request. */
static int dsn_flag(int argc, char **argv, int *i, struct sendmail_opts *o, const char **what,
		    const char **arg)
{
	const char *a = argv[*i], *v = option_value(argc, argv, i);
	if (!v)
		return bad(what, arg, "option needs a value", a);
	const char *named = v == a + 2 ? a : v;	/* the argument that holds it */
	if (a[1] == 'N' && !(o->notify = dsn_notify_parse(v)))
		return bad(what, arg, "-N takes never, or a list of success, failure, delay", named);
	if (a[1] == 'R' && (o->ret = dsn_ret_parse(v)) == RET_UNSET)
		return bad(what, arg, "-R takes full or hdrs", named);
	if (a[1] == 'V' && !envid_ok(v))
		return bad(what, arg, "-V takes printable ASCII, at most 94 characters once encoded", named);
	if (a[1] == 'V')
		o->envid = v;
	return 0;
}

void sendmail_envid_xtext(const char *envid, struct buf *out)
{
	xtext_encode(envid, strlen(envid), out);
}

static int one_flag(int argc, char **argv, int *i, struct sendmail_opts *o, const char **what,
		    const char **arg)
{
	const char *a = argv[*i];
	const struct sendmail_ignored *ig;
	if (strcmp(a, "-t") == 0)
		o->t = true;
	else if (strcmp(a, "-i") == 0 || strcmp(a, "-oi") == 0)
		o->i = true;
	else if (strcmp(a, "-v") == 0)
		o->verbose = true;
	else if (strcmp(a, "-bm") == 0)
		o->mode = SM_SEND;
	else if (strcmp(a, "-bi") == 0 || strcmp(a, "-I") == 0)
		o->mode = SM_INIT;
	else if (strcmp(a, "-bp") == 0)
		o->mode = SM_LIST;
	else if (strcmp(a, "-bs") == 0)
		o->mode = SM_SMTP;
	else if (a[1] == 'q') {	/* -q, -qID, -q30m, -qRsite: retry what waits, now */
		o->mode = SM_FLUSH;
		o->qarg = a + 2;
	}
	else if (strchr("frFC", a[1]) && (a[2] || strlen(a) == 2))
		return valued(argc, argv, i, o, what, arg);
	else if (strchr("NRV", a[1]) && (a[2] || strlen(a) == 2))
		return dsn_flag(argc, argv, i, o, what, arg);
	else if ((ig = find_ignored(a)) != NULL) {
		if (ig->value && !a[strlen(ig->flag)] && !option_value(argc, argv, i))
			return bad(what, arg, "option needs a value", a);
		o->ignored++;
	} else
		return bad(what, arg, "unknown option", a);
	return 0;
}

int sendmail_parse_args(int argc, char **argv, struct sendmail_opts *o, const char **what,
			const char **arg)
{
	int i;
	memset(o, 0, sizeof *o);
	*what = *arg = NULL;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || a[1] == '\0')
			break;
		int rc = one_flag(argc, argv, &i, o, what, arg);
		if (rc)
			return rc;
	}
	o->rcpt = argv + i;
	o->nrcpt = argc - i;
	return 0;
}
