/* Address parsing: a MAIL/RCPT path and an address-list header value.
 * Invariant: every address that comes out passes addr_check() (no control
 * characters, at most ADDR_MAX octets), which is what keeps queue files
 * and log lines from being forged. */
#include "fuzz.h"
#include "../../common/address.h"
#include "../../common/headers.h"

static void add(const char *a, void *arg)
{
	struct err e;
	(void)arg;
	CHECK(strlen(a) <= ADDR_MAX);
	CHECK(addr_check(a, &e) == 0);
	for (const char *p = a; *p; p++)
		CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), out[ADDR_MAX + 1];
	memcpy(s, data, size);
	s[size] = '\0';
	const char *params;
	struct err e;
	for (int allow_null = 0; allow_null < 2; allow_null++) {
		if (smtp_path_parse(s, allow_null, out, sizeof out, &params, &e) == 0) {
			CHECK(params >= s && params <= s + strlen(s));
			if (*out)
				add(out, NULL);
			else
				CHECK(allow_null);
		}
	}
	(void)addrlist_parse(s, size, add, NULL, &e);
	free(s);
	return 0;
}
