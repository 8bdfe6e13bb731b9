/* The sendmail command's arguments (NUL-separated in the input).
 * Invariants: parsing ends in success or a usage error, never reads past
 * argv, and the recipients are a tail of argv. */
#include "fuzz.h"
#include <sysexits.h>
#include "../../tool/sendmail_args.h"

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
	struct sendmail_opts o;
	const char *what, *arg;
	int rc = sendmail_parse_args(argc, argv, &o, &what, &arg);
	CHECK(rc == 0 || rc == EX_USAGE);
	if (rc) {	/* the message names an argument that is there */
		CHECK(what != NULL && arg != NULL);
		bool found = false;
		for (int k = 1; k < argc; k++)
			found |= arg == argv[k];
		CHECK(found);
	}
	if (rc == 0) {
		CHECK(o.nrcpt >= 0 && o.nrcpt <= argc - 1);
		CHECK(o.rcpt == argv + (argc - o.nrcpt));
	}
	free(copy);
	return 0;
}
