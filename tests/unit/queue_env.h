/* The envelope the queue's unit tests start from (test_queue.c,
 * test_qrecord.c): a sender, a plain and a quoted recipient. */
#ifndef OUTBOX_TEST_QUEUE_ENV_H
#define OUTBOX_TEST_QUEUE_ENV_H

#include <stdlib.h>
#include <string.h>

#include "../../common/queue.h"

static void make_env(struct envelope *env)
{
	envelope_init(env);
	env->arrival = 1732700000.5;
	env->uid = 1000;
	env->flags = ENV_8BITMIME;
	env->sender = strdup("a@example.org");
	envelope_add_rcpt(env, "b@example.net");
	envelope_add_rcpt(env, "\"c d\"@example.net");
}

#endif
