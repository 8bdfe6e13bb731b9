/*
 * tls_compat.c - the TLS library's abilities and mbedTLS 3.6.6's TLS 1.2
 * fault.  See tls_compat.h.  Everything version-dependent about mbedTLS
 * but net.c's one API difference (min_tls_version) is here.
 */
#include "tls_compat.h"

#include <stdio.h>

#include <mbedtls/version.h>

/* The fault needs both protocol versions in one client (3.6's default). */
#if MBEDTLS_VERSION_NUMBER >= 0x03060000 && defined(MBEDTLS_SSL_PROTO_TLS1_2) \
	&& defined(MBEDTLS_SSL_PROTO_TLS1_3)
#define PSS_FAULT_POSSIBLE 1
#endif

/* Releases with the fault: 3.6.6 only (3.6.7 has #10674).  Widen this if
 * a distribution backports the 3.6.6 check into another release. */
#define PSS_FAULT_FIRST 0x03060600u
#define PSS_FAULT_FIXED 0x03060700u

#if defined(PSS_FAULT_POSSIBLE)
static unsigned loaded_version(void)
{
#if defined(MBEDTLS_VERSION_C)
	return mbedtls_version_get_number();	/* the library, which may be newer than its headers */
#else
	return MBEDTLS_VERSION_NUMBER;
#endif
}
#endif

bool tls_library_has_tls13(void)
{
#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
	return true;
#else
	return false;
#endif
}

void tls_library_describe(char *out, size_t n)
{
	char name[32] = MBEDTLS_VERSION_STRING_FULL;
#if defined(MBEDTLS_VERSION_C)
	mbedtls_version_get_string_full(name);
#endif
	snprintf(out, n, "%s: %s", name, tls_library_has_tls13() ? "TLS 1.2 and 1.3" : "TLS 1.2 only");
}

bool tls12_pss_fault(void)
{
#if defined(PSS_FAULT_POSSIBLE)
	unsigned v = loaded_version();
	return v >= PSS_FAULT_FIRST && v < PSS_FAULT_FIXED;
#else
	return false;
#endif
}

#if defined(PSS_FAULT_POSSIBLE)
/* ECDSA, then RSA with PKCS#1 v1.5: 3.6's default list without RSA-PSS,
 * in its order.  The configuration keeps a pointer: static. */
static const uint16_t sig_algs_without_pss[] = {
	MBEDTLS_TLS1_3_SIG_ECDSA_SECP256R1_SHA256,
	MBEDTLS_TLS1_3_SIG_ECDSA_SECP384R1_SHA384,
	MBEDTLS_TLS1_3_SIG_ECDSA_SECP521R1_SHA512,
	MBEDTLS_TLS1_3_SIG_RSA_PKCS1_SHA512,
	MBEDTLS_TLS1_3_SIG_RSA_PKCS1_SHA384,
	MBEDTLS_TLS1_3_SIG_RSA_PKCS1_SHA256,
	MBEDTLS_TLS1_3_SIG_NONE
};
#endif

int tls12_pss_avoid(mbedtls_ssl_config *conf, struct err *e)
{
#if defined(PSS_FAULT_POSSIBLE)
	mbedtls_ssl_conf_max_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
	mbedtls_ssl_conf_sig_algs(conf, sig_algs_without_pss);
	(void)e;
	return 0;
#else
	(void)conf;
	return err_set(e, "no TLS 1.2 workaround in this build");
#endif
}

bool tls12_pss_refused(const mbedtls_ssl_context *ssl, int rc)
{
#if defined(PSS_FAULT_POSSIBLE)
	return rc == MBEDTLS_ERR_SSL_ILLEGAL_PARAMETER
	       && mbedtls_ssl_get_version_number(ssl) == MBEDTLS_SSL_VERSION_TLS1_2;
#else
	(void)ssl;
	(void)rc;
	return false;
#endif
}
