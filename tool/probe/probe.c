/*
 * probe.c - outbox-probe, run by `outbox probe` (a program of its own so
 * that the sendmail path never loads the TLS libraries): connect to the
 * upstream as outboxd would
 * (smtp_open: greeting, EHLO, STARTTLS, EHLO, AUTH, with the same
 * configuration, CA bundle and verification) and show what happened:
 * the dialogue, TLS version and cipher, the server certificate
 * (subject, issuer, expiry, verification result) and the AUTH result.
 * Sends no mail: QUIT after AUTH.  First, once: the TLS library and the
 * TLS versions it can negotiate ("tls library: Mbed TLS 3.6.6: TLS 1.2
 * and 1.3"; the tests read it to know what to expect of this build).
 *
 * When the certificate fails verification the handshake is aborted, so
 * a second connection that does not verify (and sends no AUTH) fetches
 * the certificate to show why.
 *
 * Run as root it becomes [queue] user first, once the configuration is
 * read (tool_become_daemon_user): password_file, password_command and
 * the OAuth2 token files are read, run and replaced as outboxd would,
 * so a token it rotates stays readable by outboxd.
 *
 * Invariant: no secret is printed; the transcript never holds AUTH
 * arguments (smtp_client.c).  Exit 0 when outboxd could relay through
 * the upstream as configured, 1 when not (the last line says why), 78
 * for a configuration error.
 */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "../../common/net.h"
#include "../../common/smtp_client.h"
#include "../../common/tls_compat.h"
#include "../../common/tokens.h"
#include "../tool.h"

static const char *const stage_names[] = {
	[ST_CONNECT] = "connect", [ST_GREETING] = "greeting", [ST_EHLO] = "EHLO",
	[ST_STARTTLS] = "STARTTLS", [ST_TLS] = "TLS", [ST_AUTH] = "AUTH",
	[ST_MAIL] = "MAIL", [ST_RCPT] = "RCPT", [ST_DATA] = "DATA", [ST_DOT] = "end of data",
	[ST_LOCAL] = "local",
};

static void show_certificate(struct netconn *n)
{
	struct buf info;
	buf_init(&info);
	net_peer_cert_info(n, &info);
	if (info.len)
		printf("%s", info.data);
	buf_free(&info);
}

/* The certificate of a server that failed verification, fetched without
 * verifying and without AUTH. */
static void show_failed_certificate(const struct relay *r)
{
	struct relay copy = *r;
	struct tls_client t;
	struct smtp_client s;
	struct err e;
	copy.user = "";
	if (tls_client_init(&t, r->ca_file, false, &e) < 0)
		return;
	smtp_client_init(&s);
	if (smtp_open(&s, &copy, &t) == 0) {
		show_certificate(&s.net);
		smtp_quit(&s);
	}
	smtp_client_free(&s);
	tls_client_free(&t);
}

/* Connect to one relay as outboxd would and say what happened; 0 if
 * outboxd can relay through it. */
static int probe(const struct config *c, const struct relay *r)
{
	struct tls_client t;
	struct smtp_client s;
	struct buf transcript;
	struct err e;
	int rc = 1;
	printf("relay: %s%s%s%s port %llu, tls = %s, auth = %s%s%s\n", *r->name ? "[relay." : "[relay]",
	       r->name, *r->name ? "] " : " ", r->host, (unsigned long long)r->port, tls_mode_name(r->tls),
	       auth_mode_name(r->auth), *r->user ? " as " : "", r->user);
	memset(&t, 0, sizeof t);
	if (r->tls != TLS_NONE && tls_client_init(&t, r->ca_file, r->verify, &e) < 0) {
		printf("result: failed: %s\n", e.msg);
		return 1;
	}
	smtp_client_init(&s);
	struct token_cache *cache = token_cache_new(c->path);
	s.token = token_hook;
	s.token_arg = cache;
	buf_init(&transcript);
	s.transcript = &transcript;
	int opened = smtp_open(&s, r, &t);
	if (transcript.len)
		printf("%s", transcript.data);
	if (s.net.tls_version[0])
		printf("tls: %s %s%s\n", s.net.tls_version, s.net.tls_cipher,
		       t.use_tls12 ? " (without RSA-PSS: the mbedTLS 3.6.6 workaround, outboxd(8))" : "");
	if (opened == 0) {
		if (s.net.tls)
			show_certificate(&s.net);
		if (s.auth_used)
			printf("auth: %s as %s: ok\n", s.auth_used, r->user);
		else
			printf("auth: none (no user set for this relay)\n");
		printf("result: ok: outboxd can relay through %s\n", s.relay);
		smtp_quit(&s);
		rc = 0;
	} else {
		if (s.fail_stage == ST_TLS && strstr(s.fail_text, "verification failed"))
			show_failed_certificate(r);
		printf("result: failed at %s: %s\n", stage_names[s.fail_stage], s.fail_text);
	}
	buf_free(&transcript);
	smtp_client_free(&s);
	token_cache_free(cache);
	tls_client_free(&t);
	return rc;
}

/* outbox probe [RELAY]: every relay in the order they are tried, or the
 * one named (NAME of [relay.NAME]; "default" for [relay]). */
int main(int argc, char **argv)
{
	const char *conf_path;
	int i = tool_helper_args(argc, argv, &conf_path);
	if (argc - i > 1) {
		fprintf(stderr, "usage: outbox [-C FILE] probe [RELAY]\n");
		return EX_USAGE;
	}
	const char *only = i < argc ? argv[i] : NULL;
	struct config *c = tool_config(conf_path);
	tool_become_daemon_user(c, "outbox probe");	/* its secrets and tokens, as outboxd has them */
	char lib[96];
	tls_library_describe(lib, sizeof lib);
	printf("tls library: %s%s\n\n", lib, tls12_pss_fault() ? " (with the TLS 1.2 workaround for it)" : "");
	int rc = 0, found = 0;
	for (size_t k = 0; k < c->nrelays; k++) {
		const struct relay *r = c->relays[k];
		const char *name = *r->name ? r->name : "default";
		if (only && strcmp(only, name) != 0)
			continue;
		if (found++)
			printf("\n");
		rc |= probe(c, r);
	}
	if (only && !found) {
		fprintf(stderr, "outbox probe: no relay %s in %s\n", only, c->path);
		rc = EX_USAGE;
	}
	config_unref(c);
	return rc;
}
