/* Header parsing.  Invariants: every field lies within the message, in
 * order, and the body offset is at most its length; the fields found
 * cover the header section without overlap. */
#include "fuzz.h"
#include "../../common/headers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *msg = (const char *)data;
	struct header_list h;
	headers_parse(msg, size, &h);
	CHECK(h.body_off <= size);
	const char *prev_end = msg;
	for (size_t i = 0; i < h.n; i++) {
		const struct header *f = &h.v[i];
		CHECK(f->start >= prev_end && f->start + f->len <= msg + size);
		CHECK(f->name_len < f->len);
		CHECK(f->value >= f->start && f->value + f->value_len <= f->start + f->len);
		prev_end = f->start + f->len;
	}
	CHECK(prev_end <= msg + h.body_off || h.n == 0);
	(void)headers_find(&h, "to");
	headers_free(&h);
	return 0;
}
