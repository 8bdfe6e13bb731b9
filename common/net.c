/*
 * net.c - blocking connections with per-operation timeouts, and TLS.
 * See net.h.  Every wait goes through wait_fd() (poll with the
 * connection's timeout); the TLS layer reaches the socket only through
 * the bio callbacks below, which use the same waits.
 */
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/version.h>

#include "tls_compat.h"

static const char *tls_strerror(int rc, char *buf, size_t n)
{
	mbedtls_strerror(rc, buf, n);
	return buf;
}

/* One client configuration: TLS 1.2 at least, verification as asked.
 * Both of a tls_client's configurations come from here, so they verify
 * the server alike. */
static int conf_setup(struct tls_client *t, mbedtls_ssl_config *conf, bool verify, struct err *e)
{
	char msg[200];
	int rc;
	if ((rc = mbedtls_ssl_config_defaults(conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
					      MBEDTLS_SSL_PRESET_DEFAULT)) != 0)
		return err_set(e, "TLS setup: %s", tls_strerror(rc, msg, sizeof msg));
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
	mbedtls_ssl_conf_min_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
#else
	mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
#endif
	mbedtls_ssl_conf_authmode(conf, verify ? MBEDTLS_SSL_VERIFY_REQUIRED : MBEDTLS_SSL_VERIFY_OPTIONAL);
	mbedtls_ssl_conf_ca_chain(conf, &t->ca, NULL);
	mbedtls_ssl_conf_rng(conf, mbedtls_ctr_drbg_random, &t->drbg);
	return 0;
}

int tls_client_init(struct tls_client *t, const char *ca_file, bool verify, struct err *e)
{
	char msg[200];
	int rc;
	memset(t, 0, sizeof *t);
	mbedtls_entropy_init(&t->entropy);
	mbedtls_ctr_drbg_init(&t->drbg);
	mbedtls_x509_crt_init(&t->ca);
	mbedtls_ssl_config_init(&t->conf);
	mbedtls_ssl_config_init(&t->conf_tls12);
	t->ready = true;
	if ((rc = mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy,
					(const unsigned char *)"outbox", 6)) != 0)
		return err_set(e, "TLS random seed: %s", tls_strerror(rc, msg, sizeof msg));
	const char *bundle = ca_file && *ca_file ? ca_file : SYSTEM_CA_BUNDLE;
	rc = mbedtls_x509_crt_parse_file(&t->ca, bundle);
	if (rc < 0 && verify)
		return err_set(e, "cannot load CA certificates from %s: %s", bundle,
			       tls_strerror(rc, msg, sizeof msg));
	if (conf_setup(t, &t->conf, verify, e) < 0)
		return -1;
	t->has_tls12 = tls12_pss_fault();
	if (t->has_tls12 && (conf_setup(t, &t->conf_tls12, verify, e) < 0
			     || tls12_pss_avoid(&t->conf_tls12, e) < 0))
		return -1;
	return 0;
}

void tls_client_free(struct tls_client *t)
{
	if (!t->ready)
		return;
	mbedtls_ssl_config_free(&t->conf_tls12);
	mbedtls_ssl_config_free(&t->conf);
	mbedtls_x509_crt_free(&t->ca);
	mbedtls_ctr_drbg_free(&t->drbg);
	mbedtls_entropy_free(&t->entropy);
	t->ready = false;
}

bool tls_client_fall_back(struct tls_client *t, const struct netconn *c)
{
	if (!t->has_tls12 || t->use_tls12 || !c->tls12_pss_refused)
		return false;
	t->use_tls12 = true;
	return true;
}

void net_init(struct netconn *c)
{
	memset(c, 0, sizeof *c);
	c->fd = -1;
	buf_init(&c->in);
}

/* Wait until fd is readable (events POLLIN) or writable; 0, or -1 with
 * errno ETIMEDOUT. */
static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	for (;;) {
		int r = poll(&p, 1, timeout_ms);
		if (r > 0)
			return 0;
		if (r == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (errno != EINTR)
			return -1;
	}
}

static int connect_one(const struct addrinfo *ai, int timeout_ms)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
	if (fd < 0)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		int soerr = 0;
		socklen_t len = sizeof soerr;
		if (errno != EINPROGRESS || wait_fd(fd, POLLOUT, timeout_ms) < 0
		    || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr != 0) {
			if (soerr)
				errno = soerr;
			int saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);	/* never let "." wait */
	return fd;
}

int net_connect(struct netconn *c, const char *host, int port, int timeout_ms, struct err *e)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char portstr[8], tried[400] = "";
	size_t tl = 0;
	snprintf(portstr, sizeof portstr, "%d", port);
	int rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0)
		return err_set(e, "cannot resolve %s: %s", host, gai_strerror(rc));
	c->timeout_ms = timeout_ms;
	c->port = port;
	c->tls_version[0] = c->tls_cipher[0] = '\0';
	c->tls12_pss_refused = false;
	for (ai = res; ai; ai = ai->ai_next) {
		char addr[64] = "?";
		getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof addr, NULL, 0, NI_NUMERICHOST);
		c->fd = connect_one(ai, timeout_ms);
		if (c->fd >= 0) {
			snprintf(c->addr, sizeof c->addr, "%s", addr);
			freeaddrinfo(res);
			return 0;
		}
		int w = snprintf(tried + tl, sizeof tried - tl, "%s%s: %s", tl ? "; " : "", addr, strerror(errno));
		if (w > 0 && (size_t)w < sizeof tried - tl)
			tl += (size_t)w;
	}
	freeaddrinfo(res);
	return err_set(e, "cannot connect to %s port %d (%s)", host, port, tried);
}

/* bio callbacks: the socket is non-blocking; we wait with the timeout. */
static int bio_send(void *ctx, const unsigned char *p, size_t n)
{
	struct netconn *c = ctx;
	for (;;) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w >= 0)
			return (int)w;
		if (errno == EINTR)
			continue;
		if ((errno != EAGAIN && errno != EWOULDBLOCK) || wait_fd(c->fd, POLLOUT, c->timeout_ms) < 0)
			return errno == ETIMEDOUT ? MBEDTLS_ERR_SSL_TIMEOUT : MBEDTLS_ERR_NET_SEND_FAILED;
	}
}

static int bio_recv(void *ctx, unsigned char *p, size_t n)
{
	struct netconn *c = ctx;
	for (;;) {
		ssize_t r = recv(c->fd, p, n, 0);
		if (r >= 0)
			return r == 0 ? MBEDTLS_ERR_NET_CONN_RESET : (int)r;
		if (errno == EINTR)
			continue;
		if ((errno != EAGAIN && errno != EWOULDBLOCK) || wait_fd(c->fd, POLLIN, c->timeout_ms) < 0)
			return errno == ETIMEDOUT ? MBEDTLS_ERR_SSL_TIMEOUT : MBEDTLS_ERR_NET_RECV_FAILED;
	}
}

/* The host as an IP address (4 or 16 octets into ip), or 0 for a name. */
static size_t ip_literal(const char *host, unsigned char ip[16])
{
	if (inet_pton(AF_INET, host, ip) == 1)
		return 4;
	if (inet_pton(AF_INET6, host, ip) == 1)
		return 16;
	return 0;
}

/* Verify callback for a host given as an IP address: the server
 * certificate (depth 0) must carry it as an iPAddress SAN (RFC 6125
 * 6.2.1), else it fails like a name mismatch. */
static int verify_ip_san(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
	const struct netconn *c = arg;
	if (depth != 0)
		return 0;
	for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s && s->buf.p; s = s->next)
		if (s->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) && s->buf.len == c->peer_ip_len
		    && memcmp(s->buf.p, c->peer_ip, c->peer_ip_len) == 0)
			return 0;
	*flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
	return 0;
}

int net_start_tls(struct netconn *c, struct tls_client *t, const char *host, struct err *e)
{
	char msg[200];
	int rc;
	buf_reset(&c->in);	/* STARTTLS injection: plaintext read so far is dropped */
	mbedtls_ssl_init(&c->ssl);
	c->tls = true;
	/* an IP address is neither sent as SNI (RFC 6066) nor matched as a
	 * name: verify_ip_san matches it */
	c->peer_ip_len = ip_literal(host, c->peer_ip);
	if ((rc = mbedtls_ssl_setup(&c->ssl, t->use_tls12 ? &t->conf_tls12 : &t->conf)) != 0
	    || (rc = mbedtls_ssl_set_hostname(&c->ssl, c->peer_ip_len ? NULL : host)) != 0)
		return err_set(e, "TLS setup: %s", tls_strerror(rc, msg, sizeof msg));
	if (c->peer_ip_len)
		mbedtls_ssl_set_verify(&c->ssl, verify_ip_san, c);
	mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
	while ((rc = mbedtls_ssl_handshake(&c->ssl)) != 0) {
		if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
			continue;
		c->tls12_pss_refused = t->has_tls12 && !t->use_tls12 && tls12_pss_refused(&c->ssl, rc);
		uint32_t flags = mbedtls_ssl_get_verify_result(&c->ssl);
		if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && flags) {
			char info[300];
			mbedtls_x509_crt_verify_info(info, sizeof info, "", flags);
			for (char *p = info; *p; p++)
				if (*p == '\n')
					*p = *(p + 1) ? ';' : '\0';
			return err_set(e, "TLS certificate verification failed for %s: %s", host, info);
		}
		return err_set(e, "TLS handshake with %s failed: %s", host, tls_strerror(rc, msg, sizeof msg));
	}
	snprintf(c->tls_version, sizeof c->tls_version, "%s", mbedtls_ssl_get_version(&c->ssl));
	snprintf(c->tls_cipher, sizeof c->tls_cipher, "%s", mbedtls_ssl_get_ciphersuite(&c->ssl));
	return 0;
}

int net_write(struct netconn *c, const void *p, size_t n, struct err *e)
{
	const unsigned char *q = p;
	char msg[200];
	while (n > 0) {
		int w;
		if (c->tls) {
			w = mbedtls_ssl_write(&c->ssl, q, n);
			if (w == MBEDTLS_ERR_SSL_WANT_READ || w == MBEDTLS_ERR_SSL_WANT_WRITE)
				continue;
			if (w < 0)
				return err_set(e, w == MBEDTLS_ERR_SSL_TIMEOUT ? "timeout writing to server"
					       : "write to server failed: %s", tls_strerror(w, msg, sizeof msg));
		} else {
			w = bio_send(c, q, n);
			if (w < 0)
				return err_set(e, w == MBEDTLS_ERR_SSL_TIMEOUT ? "timeout writing to server"
					       : "write to server failed: %s", strerror(errno));
		}
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

int net_fill(struct netconn *c, struct err *e)
{
	char msg[200];
	buf_reserve(&c->in, 16384);
	unsigned char *p = (unsigned char *)c->in.data + c->in.len;
	int r;
	do {
		r = c->tls ? mbedtls_ssl_read(&c->ssl, p, 16384) : bio_recv(c, p, 16384);
	} while (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE);
	if (r == MBEDTLS_ERR_SSL_TIMEOUT)
		return err_set(e, "timeout waiting for the server (%d s)", c->timeout_ms / 1000);
	if (r == 0 || r == MBEDTLS_ERR_NET_CONN_RESET || r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
		return err_set(e, "lost connection with the server");
	if (r < 0)
		return err_set(e, "read from server failed: %s",
			       c->tls ? tls_strerror(r, msg, sizeof msg) : strerror(errno));
	c->in.len += (size_t)r;
	c->in.data[c->in.len] = '\0';
	return 0;
}

void net_close(struct netconn *c)
{
	if (c->tls) {
		if (c->fd >= 0)
			(void)mbedtls_ssl_close_notify(&c->ssl);
		mbedtls_ssl_free(&c->ssl);
		c->tls = false;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	buf_free(&c->in);
	/* tls_version and tls_cipher stay: they describe the last connection */
}

void net_peer_cert_info(struct netconn *c, struct buf *out)
{
	char tmp[512];
	const mbedtls_x509_crt *crt = c->tls ? mbedtls_ssl_get_peer_cert(&c->ssl) : NULL;
	if (!crt) {
		buf_adds(out, "no certificate\n");
		return;
	}
	mbedtls_x509_dn_gets(tmp, sizeof tmp, &crt->subject);
	buf_printf(out, "subject: %s\n", tmp);
	mbedtls_x509_dn_gets(tmp, sizeof tmp, &crt->issuer);
	buf_printf(out, "issuer: %s\n", tmp);
	buf_printf(out, "expires: %04d-%02d-%02d %02d:%02d:%02d UTC\n", crt->valid_to.year,
		   crt->valid_to.mon, crt->valid_to.day, crt->valid_to.hour, crt->valid_to.min,
		   crt->valid_to.sec);
	uint32_t flags = mbedtls_ssl_get_verify_result(&c->ssl);
	if (flags == 0) {
		buf_adds(out, "verification: ok\n");
	} else {
		mbedtls_x509_crt_verify_info(tmp, sizeof tmp, "verification failed: ", flags);
		buf_adds(out, tmp);
	}
}
