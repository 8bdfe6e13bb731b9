/*
 * net.h - a blocking client connection with a timeout on every read and
 * write, in clear text or TLS (mbedTLS), for the delivery workers and
 * `outbox probe`.
 *
 * Owns: trying every address of a host in turn (IPv6 and IPv4), the
 * TLS client setup (chain and host-name verification against ca_file or
 * the system bundle, TLS 1.2 at least, SNI; a host given as an IP
 * address is matched against the certificate's IP address SANs, which
 * mbedTLS 2.28 does not do itself), and the line/reply reading
 * used by the SMTP client.  TLS 1.3 where the library has it (mbedTLS
 * 3.6); with mbedTLS 3.6.6, a second configuration for TLS 1.2 servers
 * that it would refuse (tls_compat.h), chosen per relay.
 *
 * Invariants: no read or write waits longer than the connection's
 * timeout; a TLS handshake starts with the plaintext input buffer empty
 * (bytes received before it are discarded: STARTTLS injection).
 */
#ifndef OUTBOX_NET_H
#define OUTBOX_NET_H

#include <stdbool.h>
#include <stddef.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "util.h"

struct netconn;

#define SYSTEM_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

/* Per-thread TLS client state for one relay: RNG and trust anchors. */
struct tls_client {
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_x509_crt ca;
	mbedtls_ssl_config conf;
	/* mbedTLS 3.6.6 only (tls_compat.h): conf, but TLS 1.2 without
	 * RSA-PSS; use_tls12 once the relay needed it */
	mbedtls_ssl_config conf_tls12;
	bool has_tls12;
	bool use_tls12;
	bool ready;
};

int tls_client_init(struct tls_client *t, const char *ca_file, bool verify, struct err *e);
void tls_client_free(struct tls_client *t);
/* After a failed handshake on c: if it was mbedTLS 3.6.6's TLS 1.2
 * fault and t has not turned to conf_tls12 yet, turn (for good) and say
 * true: the caller connects once more. */
bool tls_client_fall_back(struct tls_client *t, const struct netconn *c);

struct netconn {
	int fd;
	int timeout_ms;
	bool tls;
	mbedtls_ssl_context ssl;
	struct buf in;		/* received, not yet consumed */
	char addr[64];		/* numeric address connected to */
	int port;
	char tls_version[32];
	char tls_cipher[96];
	unsigned char peer_ip[16];	/* the host, when it is an IP literal */
	size_t peer_ip_len;		/* 4, 16, or 0 for a name */
	bool tls12_pss_refused;		/* the last handshake failed as tls_compat.h says */
};

void net_init(struct netconn *c);
/* Resolve host and try each address in turn; e says what failed for
 * each.  With implicit_tls the TLS handshake follows at once. */
int net_connect(struct netconn *c, const char *host, int port, int timeout_ms, struct err *e);
int net_start_tls(struct netconn *c, struct tls_client *t, const char *host, struct err *e);
int net_write(struct netconn *c, const void *p, size_t n, struct err *e);
/* Read more into c->in; -1 on error, timeout or EOF. */
int net_fill(struct netconn *c, struct err *e);
void net_close(struct netconn *c);

/* After a handshake: the server certificate as text (subject, issuer,
 * expiry) and the verification result. */
void net_peer_cert_info(struct netconn *c, struct buf *out);

#endif
