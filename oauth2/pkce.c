/*
 * pkce.c - PKCE verifier, state and S256 challenge (pkce.h).
 */
#include "pkce.h"

#include <errno.h>
#include <mbedtls/sha256.h>
#include <mbedtls/version.h>
#include <string.h>
#include <sys/random.h>

void base64url(const unsigned char *in, size_t n, char *out)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0)
			     | (i + 2 < n ? in[i + 2] : 0);
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
		if (i + 1 < n)
			out[o++] = abc[v >> 6 & 63];
		if (i + 2 < n)
			out[o++] = abc[v & 63];
	}
	out[o] = '\0';
}

int pkce_random(char *out, size_t n, struct err *e)
{
	unsigned char raw[96];
	if (n > sizeof raw)
		return err_set(e, "pkce_random: %zu octets asked, at most %zu", n, sizeof raw);
	size_t got = 0;
	while (got < n) {
		ssize_t k = getrandom(raw + got, n - got, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return err_sys(e, "getrandom");
		got += (size_t)k;
	}
	base64url(raw, n, out);
	explicit_bzero(raw, sizeof raw);
	return 0;
}

int pkce_challenge(const char *verifier, char *out, struct err *e)
{
	unsigned char hash[32];
#if MBEDTLS_VERSION_MAJOR >= 3
	int rc = mbedtls_sha256((const unsigned char *)verifier, strlen(verifier), hash, 0);
#else
	int rc = mbedtls_sha256_ret((const unsigned char *)verifier, strlen(verifier), hash, 0);
#endif
	if (rc != 0)
		return err_set(e, "SHA-256 failed (mbedTLS -0x%04x)", (unsigned)-rc);
	base64url(hash, sizeof hash, out);
	return 0;
}
