/* Queue file names (common/queue.c FILE NAME), read back by the
 * start-up walk from a directory anyone with the daemon's rights may
 * have written into.  Invariants: a name that parses is exactly what
 * qname_format writes for what it parsed to (one spelling per state),
 * with its mark (.H held, .B bouncing);
 * the ID is valid and its bucket in range. */
#include "fuzz.h"
#include "../../common/queue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[64], id[QID_LEN + 1], again[QNAME_MAX];
	uint32_t next;
	unsigned tries;
	if (size >= sizeof name)
		return 0;
	memcpy(name, data, size);
	name[size] = '\0';
	if (!qname_parse(name, id, &next, &tries))
		return 0;
	CHECK(qid_valid(id));
	CHECK(qid_bucket(id) < QBUCKETS);
	CHECK(tries <= 65535);
	qname_format(again, id, next, tries);
	qname_set_mark(again, qname_mark(name));
	CHECK(strcmp(again, name) == 0);
	char back[QID_LEN + 1];
	qid_format(qid_value(id), back);
	CHECK(strcmp(back, id) == 0);
	return 0;
}
