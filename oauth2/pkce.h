/*
 * pkce.h - the secrets of one browser login (RFC 7636, PKCE): a code
 * verifier and a state, random from the kernel (getrandom), and the
 * verifier's S256 challenge.
 *
 * Invariants: every string made here is base64url without padding
 * (RFC 4648 section 5), so within RFC 7636's unreserved set
 * [A-Za-z0-9-._~]; a verifier is 43 characters (32 random octets, the
 * length RFC 7636 section 4.1 recommends, within its 43 to 128).
 */
#ifndef OUTBOX_OAUTH2_PKCE_H
#define OUTBOX_OAUTH2_PKCE_H

#include <stddef.h>

#include "../common/util.h"

#define PKCE_VERIFIER_LEN 43		/* base64url of 32 octets */
#define PKCE_CHALLENGE_LEN 43		/* base64url of a SHA-256 */

/* base64url of n random octets into out (at least 4 * n / 3 + 2
 * octets): 0, or -1 with e when the kernel gives no randomness. */
int pkce_random(char *out, size_t n, struct err *e);

/* out (PKCE_CHALLENGE_LEN + 1 octets) = BASE64URL(SHA256(verifier))
 * (RFC 7636 section 4.2, code_challenge_method S256): 0 or -1 with e. */
int pkce_challenge(const char *verifier, char *out, struct err *e);

/* base64url of n octets into out, without padding (4 * n / 3 + 2 octets). */
void base64url(const unsigned char *in, size_t n, char *out);

#endif
