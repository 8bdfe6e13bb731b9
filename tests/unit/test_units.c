/* Durations and sizes as outbox.conf writes them. */
#include "unit.h"
#include "../../common/units.h"

static void durations(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(parse_duration("90", &v), 0);   assert_int_equal(v, 90);
	assert_int_equal(parse_duration("90s", &v), 0);  assert_int_equal(v, 90);
	assert_int_equal(parse_duration("5m", &v), 0);   assert_int_equal(v, 300);
	assert_int_equal(parse_duration("1h", &v), 0);   assert_int_equal(v, 3600);
	assert_int_equal(parse_duration("5d", &v), 0);   assert_int_equal(v, 432000);
	assert_int_equal(parse_duration("1h30m", &v), 0); assert_int_equal(v, 5400);
	assert_int_equal(parse_duration("0", &v), 0);    assert_int_equal(v, 0);
}

static void bad_durations(void **state)
{
	(void)state;
	uint64_t v = 77;
	const char *bad[] = { "", "m", "5x", "-5m", "+5m", " 5m", "5m ", "5 m", "1m1h", "1h1h",
			      "5.5m", "1h30", "99999999999999999999", "18446744073709551615d", "5M" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(parse_duration(bad[i], &v), -1);
		assert_int_equal(v, 77);
	}
	assert_int_equal(parse_duration(NULL, &v), -1);
}

static void sizes(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(parse_size("1000", &v), 0); assert_int_equal(v, 1000);
	assert_int_equal(parse_size("10K", &v), 0);  assert_int_equal(v, 10240);
	assert_int_equal(parse_size("35M", &v), 0);  assert_int_equal(v, 35 * 1024 * 1024);
	assert_int_equal(parse_size("2g", &v), 0);   assert_int_equal(v, 2ULL << 30);
	const char *bad[] = { "", "K", "10KB", "1.5M", "-1", "10 K", "99999999999999999999G", "10T" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(parse_size(bad[i], &v), -1);
}

static void formatting(void **state)
{
	(void)state;
	char b[32];
	assert_string_equal(format_duration(3600, b, sizeof b), "1h");
	assert_string_equal(format_duration(90, b, sizeof b), "1m30s");
	assert_string_equal(format_duration(0, b, sizeof b), "0s");
	assert_string_equal(format_duration(432000, b, sizeof b), "5d");
	assert_string_equal(format_size(35 * 1024 * 1024, b, sizeof b), "35M");
	assert_string_equal(format_size(1000, b, sizeof b), "1000");
	uint64_t v;
	assert_int_equal(parse_duration(format_duration(93784, b, sizeof b), &v), 0);
	assert_int_equal(v, 93784);
}

static void uints(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(parse_uint("587", 65535, &v), 0); assert_int_equal(v, 587);
	assert_int_equal(parse_uint("65536", 65535, &v), -1);
	assert_int_equal(parse_uint("", 10, &v), -1);
	assert_int_equal(parse_uint("1a", 10, &v), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(durations), cmocka_unit_test(bad_durations),
		cmocka_unit_test(sizes), cmocka_unit_test(formatting), cmocka_unit_test(uints),
	};
	return cmocka_run_group_tests_name("units", tests, NULL, NULL);
}
