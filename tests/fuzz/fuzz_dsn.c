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

/* The message as the queue holds it (the precondition of RET=FULL's
 * attachment): CRLF lines; lines over 998 octets are the relay
 * encoder's to break on the way out, so here they are kept short. */
static void queue_form(const char *p, struct buf *out)
{
	size_t col = 0;
	for (; *p; p++) {
		if (*p == '\r' || *p == '\n' || col == 998) {
			buf_adds(out, "\r\n");
			col = 0;
			if (*p == '\r' && p[1] == '\n')
				p++;
			if (*p == '\r' || *p == '\n')
				continue;
		}
		buf_addc(out, *p);
		col++;
	}
	if (col)
		buf_adds(out, "\r\n");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);
	memcpy(copy, data, size);
	copy[size] = '\0';
	const char *p = copy, *end = copy + size;
	const char *reply = next(&p, end), *mta = next(&p, end), *addr = next(&p, end);
	const char *headers = p < end ? p : "";
	struct buf whole;
	buf_init(&whole);
	queue_form(headers, &whole);
	buf_addc(&whole, '\0');
	/* the low bits of the size choose the kind: a summary, relayed,
	 * the global form, RET=FULL with the message attached; the
	 * hostile reply also stands as an ORCPT and an ENVID */
	bool summary = size & 1;	/* two messages: a summary (no header section) */
	enum dsn_action second = size & 2 ? DSN_RELAYED : DSN_DELAYED;
	struct dsn_rcpt r[2] = { { .addr = addr, .action = DSN_FAILED, .reply = reply, .remote_mta = mta,
				   .orcpt = size & 4 ? reply : NULL },
				 { .addr = "b@x.example", .action = second, .reply = mta, .remote_mta = "" } };
	struct dsn_message m[2] = {
		{ .queue_id = "6B0E000000000A01", .arrival = 1e9, .rcpt = r, .nrcpt = 2, .headers = headers,
		  .headers_len = strlen(headers), .envid = size & 4 ? mta : NULL, .ret = size & 8 ? RET_FULL : RET_HDRS,
		  .utf8 = size & 16, .size = strlen(headers), .size_max = 1 << 20,
		  .content = size & 8 ? whole.data : NULL, .content_len = whole.len - 1 },
		{ .queue_id = "6B0E000000000A02", .arrival = 1e9, .rcpt = r, .nrcpt = 1, .headers = reply,
		  .headers_len = strlen(reply) } };
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
	buf_free(&whole);
	free(copy);
	return 0;
}
