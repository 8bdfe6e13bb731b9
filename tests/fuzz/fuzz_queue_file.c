/* The queue file header loader.  Invariants: what decodes re-encodes and
 * decodes to the same envelope; every status offset points at a status
 * byte; the body offset lies within the input. */
#include "fuzz.h"
#include "../../common/queue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct envelope env, again;
	struct err e;
	size_t off, off2;
	if (qrec_decode((const char *)data, size, &env, &off, &e) < 0)
		return 0;
	CHECK(off <= size);
	for (size_t i = 0; i < env.nrcpt; i++) {
		CHECK(env.rcpt[i].status_off >= 0 && (size_t)env.rcpt[i].status_off < off);
		CHECK(data[env.rcpt[i].status_off] == env.rcpt[i].status);
	}
	struct buf b;
	buf_init(&b);
	CHECK(qrec_encode(&env, &b, &e) == 0);
	CHECK(qrec_decode(b.data, b.len, &again, &off2, &e) == 0);
	CHECK(off2 == b.len && again.nrcpt == env.nrcpt && again.uid == env.uid);
	CHECK(strcmp(again.sender, env.sender) == 0);
	for (size_t i = 0; i < env.nrcpt; i++) {
		CHECK(strcmp(again.rcpt[i].addr, env.rcpt[i].addr) == 0);
		CHECK(again.rcpt[i].status == env.rcpt[i].status);
	}
	envelope_free(&again);
	envelope_free(&env);
	buf_free(&b);
	return 0;
}
