/*
 * tls_compat.h - what the mbedTLS outbox runs with can negotiate, and the
 * one place that works around a fault of a particular mbedTLS release.
 *
 * Owns: the library's name, version and TLS versions (for `outbox
 * probe`); the version range of mbedTLS 3.6.6's TLS 1.2 fault and the
 * TLS 1.2 configuration that avoids it.
 *
 * The fault (Mbed-TLS/mbedtls#10668, fixed in 3.6.7 by #10674): a client
 * built for TLS 1.2 and 1.3 offers rsa_pss_rsae_* in its one
 * signature_algorithms list, as TLS 1.3 needs for RSA certificates.  A
 * server that speaks only TLS 1.2 and has an RSA certificate may sign its
 * ServerKeyExchange with one of them (OpenSSL does when it prefers its own
 * order, as Python's ssl does), which RFC 8446 4.2.3 says a client must
 * accept; 3.6.6 added a check that a TLS 1.2 signature algorithm is one
 * its TLS 1.2 code knows, which rsa_pss_rsae_* is not, and ends the
 * handshake with illegal_parameter (MBEDTLS_ERR_SSL_ILLEGAL_PARAMETER).
 *
 * The workaround (net.c, smtp_client.c): with a library in the range, a
 * second configuration that is the first one in every respect but two:
 * TLS 1.2 only, and a signature_algorithms list without RSA-PSS (ECDSA
 * and PKCS#1 v1.5, what mbedTLS 2.28 offers), so the server must sign in
 * a way the client takes.  A handshake that fails as above is tried once
 * more with it, and that relay keeps it until the configuration is
 * loaded again.  Verification (CA chain, host name or IP address,
 * authmode, certificate profile) is the same code for both.
 *
 * Invariant: outside the range (mbedTLS 2.28, 3.6.7 and later, checked
 * on the library that is loaded, not the headers) nothing here changes
 * a handshake.
 */
#ifndef OUTBOX_TLS_COMPAT_H
#define OUTBOX_TLS_COMPAT_H

#include <stdbool.h>
#include <stddef.h>

#include <mbedtls/ssl.h>

#include "util.h"

/* "Mbed TLS 3.6.6: TLS 1.2 and 1.3" or "mbed TLS 2.28.3: TLS 1.2 only". */
void tls_library_describe(char *out, size_t n);
/* The build can negotiate TLS 1.3. */
bool tls_library_has_tls13(void);

/* The loaded library has the 3.6.6 TLS 1.2 fault. */
bool tls12_pss_fault(void);
/* Make conf (already set up like the main one) TLS 1.2 only, with a
 * signature_algorithms list without RSA-PSS. */
int tls12_pss_avoid(mbedtls_ssl_config *conf, struct err *e);
/* A handshake that failed with rc is the fault: TLS 1.2 negotiated and
 * the server's signature refused as an illegal parameter. */
bool tls12_pss_refused(const mbedtls_ssl_context *ssl, int rc);

#endif
