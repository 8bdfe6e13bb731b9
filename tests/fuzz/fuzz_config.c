/* The configuration parser (inih through the key table).  Invariants: a
 * file either loads or names its problems; one that loads prints (the
 * `outboxd -t -v` dump) as a file that loads again. */
#include "fuzz.h"
#include <unistd.h>
#include "../../common/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], dump[64];
	snprintf(path, sizeof path, "/tmp/outbox-fuzz-conf-%d", (int)getpid());
	snprintf(dump, sizeof dump, "/tmp/outbox-fuzz-dump-%d", (int)getpid());
	FILE *f = fopen(path, "w");
	fwrite(data, 1, size, f);
	fclose(f);
	struct buf errors;
	buf_init(&errors);
	struct config *c = config_load(path, CONF_CLIENT, &errors);
	if (!c) {
		CHECK(errors.len > 0);
	} else {
		f = fopen(dump, "w");
		config_dump(c, f);
		fclose(f);
		buf_reset(&errors);
		struct config *again = config_load(dump, CONF_CLIENT, &errors);
		if (!again)
			fprintf(stderr, "dump does not load:\n%s\n", errors.data);
		CHECK(again);
		config_free(again);
		config_free(c);
	}
	buf_free(&errors);
	unlink(path);
	unlink(dump);
	return 0;
}
