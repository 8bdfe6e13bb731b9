/* The retry policy: doubling from retry_min, capped at retry_max, with
 * jitter that never leaves [retry_min, retry_max]. */
#include "unit.h"
#include "../../common/retry.h"

static void backoff(void **state)
{
	(void)state;
	/* no jitter in the middle of the range (rnd 0.5 -> factor 1.0) */
	assert_true(retry_delay(60, 3600, 1, 0.5) == 60);
	assert_true(retry_delay(60, 3600, 2, 0.5) == 120);
	assert_true(retry_delay(60, 3600, 3, 0.5) == 240);
	assert_true(retry_delay(60, 3600, 7, 0.5) == 3600);
	assert_true(retry_delay(60, 3600, 1000, 0.5) == 3600);
	assert_true(retry_delay(60, 3600, 0, 0.5) == 60);
}

static void jitter_bounds(void **state)
{
	(void)state;
	for (unsigned n = 1; n < 20; n++) {
		for (double r = 0; r < 1; r += 0.05) {
			double d = retry_delay(10, 100, n, r);
			assert_true(d >= 10 && d <= 100);
		}
	}
	assert_true(retry_delay(10, 1000, 3, 0.0) == 36);	/* 40 * 0.9 */
	assert_true(retry_delay(10, 1000, 3, 0.999999) > 43.9);
}

int main(void)
{
	const struct CMUnitTest tests[] = { cmocka_unit_test(backoff), cmocka_unit_test(jitter_bounds) };
	return cmocka_run_group_tests_name("retry", tests, NULL, NULL);
}
