/* outbox.conf parsing: defaults, every type, and errors naming file, line and key. */
#include "unit.h"
#include <sys/stat.h>
#include <unistd.h>
#include "../../common/config.h"
#include "../../common/providers.h"

#define TEN "abcdefghij"
#define LONG_NAME TEN TEN TEN TEN TEN TEN TEN TEN TEN TEN TEN TEN TEN TEN TEN TEN TEN TEN TEN TEN

static char dir[] = "/tmp/outbox-unit-cf.....";	/* dots become the mkdtemp template */

static const char *write_conf(const char *name, const char *text)
{
	static char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* config_load with its list of problems in e (enough for these tests) */
static struct config *load_file(const char *path, unsigned flags, struct err *e)
{
	struct buf errors;
	buf_init(&errors);
	struct config *c = config_load(path, flags, &errors);
	snprintf(e->msg, sizeof e->msg, "%s", errors.data ? errors.data : "");
	buf_free(&errors);
	return c;
}

static struct config *load(const char *text, struct err *e)
{
	return load_file(write_conf("t.conf", text), 0, e);
}

static void defaults(void **state)
{
	(void)state;
	struct err e;
	struct config *c = load("", &e);
	assert_non_null(c);
	assert_string_equal(c->queue.spool, "/var/spool/outbox");
	assert_string_equal(c->queue.user, "outbox");
	assert_int_equal(c->queue.lifetime, 5 * 86400);
	assert_int_equal(c->queue.retry_min, 60);
	assert_int_equal(c->queue.retry_max, 3600);
	assert_int_equal(c->queue.max_message_size, 35 * 1024 * 1024);
	assert_int_equal(c->queue.max_recipients, 1000);
	assert_string_equal(c->listen.socket, "/run/outbox/outbox.sock");
	assert_int_equal(c->listen.socket_mode, 0666);
	assert_string_equal(c->listen.tcp, "");
	assert_int_equal(c->relays[0]->port, 587);
	assert_int_equal(c->relays[0]->tls, TLS_STARTTLS);
	assert_int_equal(c->relays[0]->verify, 1);
	assert_int_equal(c->relays[0]->auth, AUTH_AUTO);
	assert_int_equal(c->relays[0]->workers, 4);
	assert_int_equal(c->relays[0]->timeout, 300);
	assert_int_equal(c->log.target, 0);
	config_free(c);
}

static void every_type(void **state)
{
	(void)state;
	struct err e;
	struct config *c = load("; comment\n# another\n"
				"[queue]\nspool = /srv/q\nlifetime = 2d\nretry_min = 30s\nretry_max = 2h\n"
				"max_message_size = 10M\nmax_recipients = 50\n"
				"[listen]\nsocket_mode = 0660\ntcp = [::1]:2525\n"
				"[relay]\nhost = smtp.gmail.com\nport = 465\ntls = tls\nverify = no\n"
				"auth = xoauth2\nworkers = 8\ntimeout = 1m\n"
				"[address]\ndomain = example.org\npostmaster = pm@example.org\n"
				"[aliases]\nroot = a@example.org, b@example.org\n"
				"  c@example.org\n"
				"[senders]\n* = server1@example.org\nwww-data = web@example.org\n"
				"[log]\ntarget = stderr\nlevel = debug\n", &e);
	if (!c)
		fail_msg("%s", e.msg);
	assert_string_equal(c->queue.spool, "/srv/q");
	assert_int_equal(c->queue.lifetime, 2 * 86400);
	assert_int_equal(c->queue.retry_min, 30);
	assert_int_equal(c->queue.max_message_size, 10 * 1024 * 1024);
	assert_int_equal(c->listen.socket_mode, 0660);
	assert_string_equal(c->listen.tcp, "[::1]:2525");
	assert_int_equal(c->relays[0]->port, 465);
	assert_int_equal(c->relays[0]->tls, TLS_IMPLICIT);
	assert_int_equal(c->relays[0]->verify, 0);
	assert_int_equal(c->relays[0]->auth, AUTH_XOAUTH2);
	assert_int_equal(c->relays[0]->workers, 8);
	assert_string_equal(map_get(&c->aliases, "ROOT"), "a@example.org, b@example.org, c@example.org");
	assert_string_equal(map_get(&c->senders, "*"), "server1@example.org");
	assert_string_equal(map_get(&c->senders, "www-data"), "web@example.org");
	assert_null(map_get(&c->senders, "nobody"));
	assert_int_equal(c->log.level, 4);
	config_free(c);
}

/* Each bad file must fail with an error naming file:line and the key. */
static void errors(void **state)
{
	(void)state;
	static const struct { const char *text; const char *expect; } cases[] = {
		{ "[queue]\nbogus = 1\n", "t.conf:2: [queue] bogus: unknown key" },
		{ "[nosuch]\nx = 1\n", "t.conf:2: [nosuch] x: unknown section" },
		{ "[queue]\nlifetime = 5 days\n", "t.conf:2: [queue] lifetime: not a duration" },
		{ "[queue]\nmax_message_size = 1T\n", "t.conf:2: [queue] max_message_size: not a size" },
		{ "[relay]\nport = 70000\n", "t.conf:2: [relay] port: out of range" },
		{ "[relay]\ntls = maybe\n", "t.conf:2: [relay] tls: not one of the allowed values" },
		{ "[relay]\nverify = perhaps\n", "t.conf:2: [relay] verify: must be yes or no" },
		{ "[listen]\nsocket_mode = 999\n", "t.conf:2: [listen] socket_mode: not an octal mode" },
		{ "[listen]\ntcp = localhost\n", "t.conf:2: [listen] tcp: must be HOST:PORT" },
		{ "[queue]\nspool = relative/path\n", "t.conf:2: [queue] spool: must be an absolute path" },
		{ "\n\n[queue]\nspool = /a\nspool = /b\n", "t.conf:5: [queue] spool: given twice" },
		{ "[queue]\nthis line has no equals sign\n", "t.conf:2: syntax error" },
		{ "[queue]\nretry_min = 2h\nretry_max = 1h\n", "t.conf:2: [queue] retry_min: larger than retry_max" },
		{ "[relay]\nuser = me\n", "t.conf:2: [relay] user: set, but neither" },
		{ "[relay]\ntls = none\nuser = me\npassword_command = /bin/echo x\n",
		  "t.conf:2: [relay] tls: none with a user would send AUTH in clear text" },
		{ "[aliases]\nroot = not an address\n", "t.conf:2: [aliases] root: bad" },
		{ "[senders]\nroot = a@b.example\nroot = c@d.example\n", "t.conf:3: [senders] root: given twice" },
		{ "[address]\ndomain = -bad-.example\n", "t.conf:2: [address] domain: not a valid domain" },
		{ "[queue]\nuser = " LONG_NAME "\n", "t.conf:2: line longer than" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct err e;
		struct config *c = load(cases[i].text, &e);
		if (c)
			fail_msg("case %zu accepted", i);
		if (!strstr(e.msg, cases[i].expect))
			fail_msg("case %zu: '%s' lacks '%s'", i, e.msg, cases[i].expect);
	}
}

static void several_errors_reported(void **state)
{
	(void)state;
	struct err e;
	assert_null(load("[queue]\nfoo = 1\n[relay]\nport = x\n", &e));
	assert_non_null(strstr(e.msg, ":2: [queue] foo"));
	assert_non_null(strstr(e.msg, ":4: [relay] port"));
}

static void password_file_permissions(void **state)
{
	(void)state;
	struct err e;
	char pw[256];
	snprintf(pw, sizeof pw, "%s", write_conf("secret", "hunter2\n"));
	char text[512];
	snprintf(text, sizeof text, "[relay]\nuser = me\npassword_file = %s\n", pw);
	chmod(pw, 0644);
	assert_null(load(text, &e));
	assert_non_null(strstr(e.msg, ":3: [relay] password_file:"));
	assert_non_null(strstr(e.msg, "readable by others"));
	assert_null(strstr(e.msg, "hunter2"));
	chmod(pw, 0640);
	struct config *c = load(text, &e);
	assert_non_null(c);
	config_free(c);
	/* the command-line tool does not look at the secret */
	chmod(pw, 0644);
	c = load_file(write_conf("t.conf", text), CONF_CLIENT, &e);
	assert_non_null(c);
	config_free(c);
}

static void missing_file(void **state)
{
	(void)state;
	struct err e;
	assert_null(load_file("/nonexistent/outbox.conf", 0, &e));
	assert_non_null(strstr(e.msg, "/nonexistent/outbox.conf"));
	struct config *c = load_file("/nonexistent/outbox.conf", CONF_MISSING_OK, &e);
	assert_non_null(c);
	config_free(c);
}

/* outboxd -t -v's dump of c, loaded again. */
static struct config *dump_and_load(const struct config *c, const char *name)
{
	struct err e;
	char path[300];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	config_dump(c, f);
	fclose(f);
	struct config *d = load_file(path, 0, &e);
	if (!d)
		fail_msg("%s", e.msg);
	return d;
}

static void dump_round_trip(void **state)
{
	(void)state;
	struct err e;
	struct config *c = load("[queue]\nlifetime = 36h\n[relay]\ntls = none\n[aliases]\nroot = a@b.example\n", &e);
	assert_non_null(c);
	struct config *d = dump_and_load(c, "dump.conf");
	assert_int_equal(d->queue.lifetime, 36 * 3600);
	assert_int_equal(d->relays[0]->tls, TLS_NONE);
	assert_string_equal(map_get(&d->aliases, "root"), "a@b.example");
	config_free(c);
	config_free(d);
}

/* [relay] and [relay.NAME]: the list by priority (then the file's
 * order), defaults per relay (no inheritance), routing by sender, and
 * a named relay surviving the dump. */
static void relay_list_and_routing(void **state)
{
	(void)state;
	struct err e;
	struct config *c = load("[relay.backup]\nhost = b.example\npriority = 20\n"
				"[relay]\nhost = a.example\nport = 465\ntls = tls\n"
				"[relay.work]\nhost = w.example\nsenders = *@Work.example, boss@home.example\n"
				"[relay.boss]\nhost = x.example\nsenders = boss@work.example\npriority = 5\n"
				"[relay.second]\nhost = s.example\n", &e);
	if (!c)
		fail_msg("%s", e.msg);
	assert_int_equal(c->nrelays, 5);
	const char *order[] = { "", "boss", "work", "second", "backup" };	/* 0, 5, 10, 10, 20 */
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(c->relays[i]->name, order[i]);
	assert_int_equal(c->relays[0]->port, 465);
	assert_int_equal(c->relays[2]->port, 587);	/* its own default, not [relay]'s */
	assert_int_equal(c->relays[2]->tls, TLS_STARTTLS);
	assert_string_equal(relay_label(c->relays[0]), "a.example");
	assert_string_equal(relay_label(c->relays[2]), "work");
	uint8_t r[RELAYS_MAX];
	const struct relay *const *l = (const struct relay *const *)c->relays;
	size_t n = relay_route(l, c->nrelays, "boss@work.example", r);	/* exact address wins */
	assert_int_equal(n, 1);
	assert_int_equal(r[0], 1);
	n = relay_route(l, c->nrelays, "anne@WORK.example", r);	/* then the domain */
	assert_int_equal(n, 1);
	assert_int_equal(r[0], 2);
	n = relay_route(l, c->nrelays, "boss@home.example", r);
	assert_int_equal(n, 1);
	assert_int_equal(r[0], 2);
	n = relay_route(l, c->nrelays, "me@else.example", r);	/* then any, by priority */
	assert_int_equal(n, 3);
	assert_int_equal(r[0], 0);
	assert_int_equal(r[1], 3);
	assert_int_equal(r[2], 4);
	n = relay_route(l, c->nrelays, "", r);			/* a report: where any may go */
	assert_int_equal(n, 3);
	struct config *d = dump_and_load(c, "relays.conf");
	assert_int_equal(d->nrelays, 5);
	assert_string_equal(d->relays[1]->senders, "boss@work.example");
	assert_int_equal(d->relays[4]->priority, 20);
	config_free(c);
	config_free(d);
}

static void relay_errors(void **state)
{
	(void)state;
	struct err e;
	assert_null(load("[relay.w]\nhost = w.example\nsenders = *@w.example\n", &e));
	assert_non_null(strstr(e.msg, "no relay takes mail from any sender"));
	assert_null(load("[relay]\nsenders = a@b.example\n", &e));
	assert_non_null(strstr(e.msg, "t.conf:2: [relay] senders: only in a [relay.NAME] section"));
	assert_null(load("[relay.default]\nhost = x\n", &e));
	assert_non_null(strstr(e.msg, "\"default\" names [relay]"));
	assert_null(load("[relay.a b]\nhost = x\n", &e));
	assert_non_null(strstr(e.msg, "[relay.a b]: a relay's NAME is"));
	assert_null(load("[relay.w]\nhost = w.example\nsenders = bob\n", &e));
	assert_non_null(strstr(e.msg, "t.conf:3: [relay.w] senders: 'bob' is neither"));
	assert_null(load("[relay.w]\nhost = w.example\nhost = v.example\n", &e));
	assert_non_null(strstr(e.msg, "t.conf:3: [relay.w] host: given twice"));
	assert_null(load("[relay.w]\nuser = u\n", &e));
	assert_non_null(strstr(e.msg, "t.conf:2: [relay.w] user: set, but neither password_file"));
	/* a file with only named relays has no [relay] */
	struct config *c = load("[relay.w]\nhost = w.example\n", &e);
	assert_non_null(c);
	assert_int_equal(c->nrelays, 1);
	assert_string_equal(c->relays[0]->name, "w");
	config_free(c);
}

/* Every provider's preset loads, and each of its values reaches its key
 * (a key name the table lacks would be skipped silently), marked as the
 * preset's by outbox config; with OAuth2 its OAuth2 values too. */
static void presets_apply(void **state)
{
	(void)state;
	for (int oauth2 = 0; oauth2 < 2; oauth2++) {
		for (size_t i = 0; provider_at(i); i++) {
			const struct provider *p = provider_at(i);
			if (oauth2 && p->login == PL_PASSWORD)
				continue;	/* (no OAuth2 there) */
			char text[600], *printed = NULL;
			size_t n = 0;
			struct err e;
			snprintf(text, sizeof text, "[relay]\nprovider = %s\n%s%s", p->name,
				 p->needs_host ? "host = h.example\n" : "",
				 oauth2 ? "user = u@example.org\noauth2_client_id = c\n"
					  "oauth2_refresh_token_file = /tmp/t\n" : "password_command = echo x\n");
			struct config *c = load(text, &e);
			if (!c)
				fail_msg("%s: %s", p->name, e.msg);
			FILE *out = open_memstream(&printed, &n);
			config_print(c, out, false);
			fclose(out);
			for (const struct preset_value *v = p->values; v->key; v++) {
				char line[300];
				snprintf(line, sizeof line, "\n%s = ", v->key);
				if (strstr(text, line))
					continue;	/* set here: the file wins */
				snprintf(line, sizeof line, "\n%s = %s    # provider %s\n", v->key, v->value, p->name);
				if ((strstr(printed, line) != NULL) != preset_applies(v, oauth2))
					fail_msg("%s, oauth2 %d: %s", p->name, oauth2, line);
			}
			free(printed);
			config_free(c);
		}
	}
}

static int setup(void **state)
{
	(void)state;
	memset(dir + strlen(dir) - 6, 'X', 6);
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults), cmocka_unit_test(every_type), cmocka_unit_test(errors),
		cmocka_unit_test(several_errors_reported), cmocka_unit_test(password_file_permissions),
		cmocka_unit_test(missing_file), cmocka_unit_test(dump_round_trip),
		cmocka_unit_test(relay_list_and_routing), cmocka_unit_test(relay_errors),
		cmocka_unit_test(presets_apply),
	};
	return cmocka_run_group_tests_name("config", tests, setup, teardown);
}
