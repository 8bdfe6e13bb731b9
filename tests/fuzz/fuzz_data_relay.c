/* The DATA reader (what the daemon stores) and the relay encoder (what
 * the upstream gets), end to end.  Invariants: the stored message has CRLF
 * line endings only and no NUL; the encoded one, with DATA and with BDAT,
 * has no line over 998 octets and CRLF only; read back by a DATA reader
 * the DATA encoding ends exactly at its last octet (no early end of data,
 * CVE-2023-51764) and gives the stored message back when no line needed
 * breaking. */
#include "fuzz.h"
#include "../../common/smtp.h"

static void check_lines(const struct buf *b)
{
	size_t line = 0;
	for (size_t i = 0; i < b->len; i++) {
		char c = b->data[i];
		if (c == '\r') {
			CHECK(i + 1 < b->len && b->data[i + 1] == '\n');
			line = 0;
			i++;
			continue;
		}
		CHECK(c != '\n');
		CHECK(++line <= SMTP_LINE_OUT_MAX);
	}
}

static void encode(const struct buf *stored, bool chunked, size_t step, struct buf *out)
{
	struct stuffer st;
	stuffer_init(&st);
	st.chunked = chunked;
	for (size_t i = 0; i < stored->len; i += step)
		stuffer_feed(&st, stored->data + i, stored->len - i < step ? stored->len - i : step, out);
	stuffer_end(&st, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = 1 + data[0] % 64;	/* how the input is cut into reads */
	const char *in = (const char *)data + 1;
	size_t n = size - 1;
	struct data_reader dr;
	struct buf stored, enc, back;
	buf_init(&stored);
	buf_init(&enc);
	buf_init(&back);
	data_reader_init(&dr);
	bool done = false;
	size_t used = 0;
	while (used < n && !done) {
		size_t want = n - used < step ? n - used : step;
		used += data_reader_feed(&dr, in + used, want, &stored, &done);
	}
	for (size_t i = 0; i < stored.len; i++) {	/* CRLF only, no NUL */
		CHECK(stored.data[i] != '\0');
		if (stored.data[i] == '\r')
			CHECK(i + 1 < stored.len && stored.data[i + 1] == '\n');
		if (stored.data[i] == '\n')
			CHECK(i > 0 && stored.data[i - 1] == '\r');
	}
	for (int chunked = 0; chunked < 2; chunked++) {
		buf_reset(&enc);
		encode(&stored, chunked, step, &enc);
		check_lines(&enc);
	}
	buf_reset(&enc);
	encode(&stored, false, stored.len ? stored.len : 1, &enc);
	struct stuffer probe;
	stuffer_init(&probe);
	struct buf tmp;
	buf_init(&tmp);
	stuffer_feed(&probe, stored.data ? stored.data : "", stored.len, &tmp);
	data_reader_init(&dr);
	bool end = false;
	size_t u = data_reader_feed(&dr, enc.data, enc.len, &back, &end);
	CHECK(end && u == enc.len);	/* the end is where we put it, and only there */
	if (probe.lines_broken == 0 && stored.len && stored.data[stored.len - 1] == '\n')
		CHECK(back.len == stored.len && memcmp(back.data, stored.data, stored.len) == 0);
	buf_free(&tmp);
	buf_free(&stored);
	buf_free(&enc);
	buf_free(&back);
	return 0;
}
