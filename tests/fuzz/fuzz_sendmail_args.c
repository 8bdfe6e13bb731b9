/* The sendmail command's arguments (NUL-separated in the input).
 * Invariants: parsing ends in success or a usage error, never reads past
 * argv, and the recipients are a tail of argv. */
#include "fuzz.h"
#define main sendmail_unused_main
#include "../../tool/sendmail.c"
#undef main

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);
	memcpy(copy, data, size);
	copy[size] = '\0';
	int argc = 1;
	char *argv[66] = { "sendmail" };
	for (char *p = copy; p < copy + size && argc < 64; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	struct opts o = { 0 };
	FILE *saved = stderr;
	stderr = fopen("/dev/null", "w");
	int rc = parse_options(argc, argv, &o);
	fclose(stderr);
	stderr = saved;
	CHECK(rc == 0 || rc == EX_USAGE);
	if (rc == 0) {
		CHECK(o.nrcpt >= 0 && o.nrcpt <= argc - 1);
		CHECK(o.rcpt == argv + (argc - o.nrcpt));
	}
	free(copy);
	return 0;
}
