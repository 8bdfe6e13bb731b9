/* What may reach a log line or a terminal as it is (common/escape.h). */
#include "unit.h"
#include "../../common/escape.h"
#include "../../common/log.h"
#include "../../common/util.h"

static const char *esc(const char *s, size_t n)
{
	static char out[256];
	esc_copy(out, sizeof out, s, n);
	return out;
}
#define ESC(lit) esc(lit, sizeof lit - 1)

static void controls_escaped_text_kept(void **state)
{
	(void)state;
	assert_string_equal(ESC("plain text, \\ and ~"), "plain text, \\ and ~");
	assert_string_equal(ESC("a\r\nb\x1b[2J\x7f\x07"), "a\\x0D\\x0Ab\\x1B[2J\\x7F\\x07");
	assert_string_equal(ESC("nul\0here"), "nul\\x00here");
	/* UTF-8: kept when valid and no C1 control */
	assert_string_equal(ESC("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7");
	assert_string_equal(ESC("\xc2\x9b" "31m \xc2\x85"), "\\xC2\\x9B31m \\xC2\\x85");	/* CSI, NEL */
	assert_string_equal(ESC("\x9b\xff\xc3"), "\\x9B\\xFF\\xC3");		/* bare, invalid, cut short */
	assert_string_equal(ESC("\xc0\xaf \xe0\x80\xaf"), "\\xC0\\xAF \\xE0\\x80\\xAF");	/* overlong */
	assert_string_equal(ESC("\xed\xa0\x80"), "\\xED\\xA0\\x80");		/* a surrogate */
	assert_string_equal(ESC("\xf4\x90\x80\x80"), "\\xF4\\x90\\x80\\x80");	/* past U+10FFFF */
}

static void truncation_never_splits(void **state)
{
	(void)state;
	char out[8];
	assert_int_equal(esc_copy(out, sizeof out, "ab\x1b" "cd", 5), 7);
	assert_string_equal(out, "ab\\x1Bc");
	assert_int_equal(esc_copy(out, 6, "abc\x1b", 4), 3);	/* no room for the whole escape */
	assert_string_equal(out, "abc");
	assert_int_equal(esc_copy(out, 6, "abcd\xc3\xa9", 6), 4);	/* nor for the whole character */
	assert_string_equal(out, "abcd");
}

static void twice_is_once(void **state)
{
	(void)state;
	char once[64], twice[64];
	log_safe("x\x1b[2J\\x1B\xc2\x9b", once, sizeof once);
	log_safe(once, twice, sizeof twice);
	assert_string_equal(once, "x\\x1B[2J\\x1B\\xC2\\x9B");
	assert_string_equal(twice, once);
}

static void json_keeps_json(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b);
	const char *j = "{\"s\":\"a\xc2\x9b\xff\"}";
	esc_buf(&b, j, strlen(j), true);
	assert_string_equal(b.data, "{\"s\":\"a\\\\xC2\\\\x9B\\\\xFF\"}");
	buf_reset(&b);
	esc_buf(&b, "tab\there", 8, false);
	assert_string_equal(b.data, "tab\\x09here");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(controls_escaped_text_kept),
		cmocka_unit_test(truncation_never_splits),
		cmocka_unit_test(twice_is_once),
		cmocka_unit_test(json_keeps_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
