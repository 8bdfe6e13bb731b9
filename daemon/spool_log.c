/*
 * spool_log.c - the daemon's voice for the queue store (spool_log.h).
 *
 * Owns: the level of each thing the store reports: an fsync that fails
 * and a file quarantined are errors, warnings of store_open are
 * warnings, the rest information.  Owns nothing else.
 */
#include "spool_log.h"

#include "../common/log.h"

void spool_log_open(const struct store *s, size_t partial)
{
	for (unsigned i = 0; i < s->nnotes; i++)
		log_warn("%s", s->notes[i].msg);
	if (partial)
		log_info("removed %zu unacknowledged partial message%s from tmp/", partial,
			 partial == 1 ? "" : "s");
}

void spool_log_news(const struct store *s)
{
	struct err n;
	while (store_news(s, &n)) {
		if (n.sys)
			log_err("%s", n.msg);
		else
			log_info("%s", n.msg);
	}
}

void spool_quarantine(const struct store *s, const char *name, const char *why)
{
	struct err said;
	store_quarantine(s, name, why, &said);
	log_err("%s", said.msg);
}
