/* The composer's encodings (tool/compose/mime.c): quoted-printable,
 * base64 lines, encoded words, RFC 2231 names, UTF-8 checks. */
#include "unit.h"
#include "../../common/headers.h"
#include "../../tool/compose/mime.h"

static void utf8(void **state)
{
	(void)state;
	static const char ok[] = "Gr\xc3\xbc\xc3\x9f" "e \xe2\x80\x93 \xf0\x9f\x98\x80";
	assert_true(utf8_valid(ok, sizeof ok - 1));
	assert_false(utf8_valid(ok, sizeof ok - 2));		/* the last character cut */
	assert_false(utf8_valid("caf\xe9", 4));			/* Latin-1 */
	assert_false(utf8_valid("\xc0\xaf", 2));			/* overlong */
	assert_false(utf8_valid("\xed\xa0\x80", 3));			/* a surrogate */
	assert_false(utf8_valid("a\0b", 3));
	assert_false(utf8_valid("\xe2\x80", 2));			/* cut short */
}

static void quoted_printable(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b);
	const char *t = "J\xc3\xb6rg = 1 \ntrailing \n";
	assert_true(text_needs_qp(t, strlen(t)));
	assert_false(text_needs_qp("plain\nascii\n", 12));
	qp_encode(&b, t, strlen(t));
	assert_string_equal(b.data, "J=C3=B6rg =3D 1=20\r\ntrailing=20\r\n");
	buf_reset(&b);
	char longline[300];
	memset(longline, 'a', sizeof longline - 1);
	longline[sizeof longline - 1] = '\0';
	qp_encode(&b, longline, strlen(longline));
	for (char *l = b.data, *nl; (nl = strstr(l, "\r\n")); l = nl + 2)
		assert_true(nl - l <= 76);				/* soft breaks */
	assert_non_null(strstr(b.data, "=\r\n"));
	buf_free(&b);
}

static void base64_76(void **state)
{
	(void)state;
	unsigned char data[200];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (unsigned char)i;
	struct buf b;
	buf_init(&b);
	base64_lines(&b, data, sizeof data);
	size_t lines = 0;
	for (char *l = b.data, *nl; (nl = strstr(l, "\r\n")); l = nl + 2, lines++)
		assert_true(nl - l == 76 || !strstr(nl + 2, "\r\n"));	/* all full but the last */
	assert_int_equal(lines, 4);
	buf_free(&b);
}

static void header_encodings(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b);
	header_words(&b, "plain subject", 9);
	assert_string_equal(b.data, "plain subject");
	buf_reset(&b);
	header_words(&b, "Gr\xc3\xbc\xc3\x9f" "e", 9);
	assert_string_equal(b.data, "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=");
	buf_reset(&b);
	char many[200] = "";
	for (int i = 0; i < 30; i++)
		strcat(many, "\xc3\xa4\xc3\xb6");		/* 120 octets */
	header_words(&b, many, 9);
	assert_non_null(strstr(b.data, "?=\r\n =?UTF-8?Q?"));	/* folded */
	for (char *w = b.data; (w = strstr(w, "=?UTF-8?Q?")); w += 10) {
		char *end = strstr(w, "?=");
		assert_true(end - w + 2 <= 75);
	}
	buf_reset(&b);
	header_words(&b, "looks =?like?= a word", 9);		/* never taken for one */
	assert_non_null(strstr(b.data, "=?UTF-8?Q?"));
	buf_reset(&b);
	header_display_name(&b, "Smith, John");
	assert_string_equal(b.data, "\"Smith, John\"");
	buf_reset(&b);
	header_display_name(&b, "John \"JJ\" Smith");
	assert_string_equal(b.data, "\"John \\\"JJ\\\" Smith\"");
	buf_reset(&b);
	filename_param(&b, "filename", "M\xc3\xa4rz 100%.pdf");
	assert_string_equal(b.data, ";\r\n\tfilename*=UTF-8''M%C3%A4rz%20100%25.pdf");
	buf_reset(&b);
	filename_param(&b, "filename", "plain.txt");
	assert_string_equal(b.data, ";\r\n\tfilename=\"plain.txt\"");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(utf8), cmocka_unit_test(quoted_printable), cmocka_unit_test(base64_76),
		cmocka_unit_test(header_encodings),
	};
	return cmocka_run_group_tests_name("mime", tests, NULL, NULL);
}
