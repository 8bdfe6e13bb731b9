/* The delivery status notification (common/dsn.c) built from hostile
 * parts: the input is split at NULs into a reply, a remote host, an
 * address and a header section.  Invariants: every line ends in CRLF
 * and is at most 998 octets, and the boundary stands only on its own
 * delimiter lines (four of them: three parts and the close; three for
 * a summary of two messages, which attaches no header section). */
#include "fuzz.h"
#include "../../common/dsn.h"

static const char *next(const char **p, const char *end)
{
	const char *s = *p;
	const char *z = memchr(s, '\0', (size_t)(end - s));
	*p = z ? z + 1 : end;
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);
	memcpy(copy, data, size);
	copy[size] = '\0';
	const char *p = copy, *end = copy + size;
	const char *reply = next(&p, end), *mta = next(&p, end), *addr = next(&p, end);
	const char *headers = p < end ? p : "";
	struct dsn_rcpt r[2] = { { addr, DSN_FAILED, reply, mta }, { "b@x.example", DSN_DELAYED, mta, "" } };
	struct dsn_message m[2] = { { "6B0E000000000A01", 1e9, r, 2, headers, strlen(headers) },
				    { "6B0E000000000A02", 1e9, r, 1, reply, strlen(reply) } };
	bool summary = size & 1;	/* two messages: a summary (no header section) */
	struct dsn_input in = { .reporting_mta = "h.example", .from_domain = "h.example", .sender = "s@h.example",
				.now = 1e9, .msg = m, .nmsg = summary ? 2 : 1, .lifetime = "5d", .rnd = size };
	struct buf b;
	buf_init(&b);
	dsn_build(&in, &b);
	const char *q = strstr(b.data, "boundary=\"");
	CHECK(q);
	char bd[100];
	snprintf(bd, sizeof bd, "%.*s", (int)(strchr(q + 10, '"') - q - 10), q + 10);
	int seen = 0;
	for (const char *l = b.data; l < b.data + b.len;) {
		const char *nl = memchr(l, '\n', (size_t)(b.data + b.len - l));
		CHECK(nl && nl > b.data && nl[-1] == '\r');
		size_t len = (size_t)(nl - 1 - l);
		CHECK(len <= 998);
		/* the attached headers are the original's, kept as they are; our
		 * own lines never hold a bare CR */
		const char *hit = memmem(l, len, bd, strlen(bd));
		if (hit && hit != q + 10) {
			CHECK(hit == l + 2 && l[0] == '-' && l[1] == '-');
			seen++;
		}
		l = nl + 1;
	}
	CHECK(seen == (summary ? 3 : 4));
	buf_free(&b);
	free(copy);
	return 0;
}
