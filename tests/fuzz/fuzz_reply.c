/* The upstream reply parser.  Invariants: a complete reply is consumed
 * within the input, has a code from 200 to 599, and parsing what follows
 * it goes on from there; never a read past the input.  The whole reply
 * on one line (smtp_reply_line) fits its buffer, small or not, and holds
 * no control character. */
#include "fuzz.h"
#include "../../common/smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_reply r;
	struct err e;
	smtp_reply_init(&r);
	size_t pos = 0;
	char line[SMTP_REPLY_SHOWN + 1], small[12];
	while (pos < size) {
		size_t used = 0;
		int rc = smtp_reply_parse((const char *)data + pos, size - pos, &r, &used, &e);
		if (rc != 1)
			break;
		CHECK(used > 0 && used <= size - pos);
		CHECK(r.code >= 200 && r.code <= 599);
		smtp_reply_line(&r, line, sizeof line);
		CHECK(strlen(line) < sizeof line);
		for (const char *c = line; *c; c++)
			CHECK((unsigned char)*c >= 0x20 && *c != 0x7f);
		smtp_reply_line(&r, small, sizeof small);
		CHECK(strlen(small) < sizeof small);
		pos += used;
	}
	smtp_reply_free(&r);
	return 0;
}
