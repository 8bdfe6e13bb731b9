/* fuzz.h - shared by the libFuzzer harnesses (make fuzz, make fuzz-smoke):
 * an invariant that fails aborts, so libFuzzer keeps the input. */
#ifndef OUTBOX_FUZZ_H
#define OUTBOX_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                     \
		}                                                                    \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#endif
