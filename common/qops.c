/*
 * qops.c - the store's durable renames and removals outside delivery:
 * hold, release and the B mark (fsynced before they return: the
 * operator's word, qrecord.c BOUNCES), deletion, and quarantine of a
 * file that cannot be read as a queue file (moved to corrupt/, kept for
 * a human, never deleted; another file there is never replaced).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"	/* log_safe: the names and reasons go to a log */
#include "qstore.h"

/* Make a rename or unlink in name's bucket durable. */
static int sync_bucket_of(const struct store *s, const char *name, struct err *e)
{
	unsigned b = qid_bucket(name);
	if (dirsync_wait(s->dirsync, b, dirsync_renamed(s->dirsync, b)) < 0)
		return err_sys(e, "fsync of queue bucket %02X", b);
	return 0;
}

int store_sync_bucket(const struct store *s, const char *id, struct err *e)
{
	return sync_bucket_of(s, id, e);
}

int store_set_held(const struct store *s, char name[QNAME_MAX], bool held, struct err *e)
{
	return store_set_mark(s, name, held ? 'H' : 0, e);
}

int store_set_mark(const struct store *s, char name[QNAME_MAX], char mark, struct err *e)
{
	char fresh[QNAME_MAX];
	memcpy(fresh, name, QNAME_MAX);
	qname_set_mark(fresh, mark);
	if (strcmp(fresh, name) == 0)
		return 0;
	char *from = store_msg_path(s, name), *to = store_msg_path(s, fresh);
	int rc = rename_noreplace(from, to) < 0 ? err_sys(e, "rename %s to %s", from, to) : 0;
	free(from);
	free(to);
	if (rc == 0) {
		memcpy(name, fresh, QNAME_MAX);
		rc = sync_bucket_of(s, name, e);
	}
	return rc;
}

int store_delete(const struct store *s, const char *name, struct err *e)
{
	char *path = store_msg_path(s, name);
	int rc = unlink(path) < 0 ? err_sys(e, "unlink %s", path) : sync_bucket_of(s, name, e);
	free(path);
	if (rc == 0)
		qdefer_forget(s, name);
	return rc;
}

int store_quarantine_at(const struct store *s, const char *dir, const char *name, const char *label,
			const char *why, struct err *said)
{
	char *from = xasprintf("%s/%s", dir, name), *to = NULL;
	char safe[300], safe_name[300];
	log_safe(label, safe, sizeof safe);
	log_safe(name, safe_name, sizeof safe_name);
	int rc = rename_aside(from, s->corrupt_dir, name, &to);
	if (rc == 0)
		err_set(said, "%s: unreadable queue file moved to corrupt/%s: %s", safe,
			strrchr(to, '/') + 1, why);
	else
		err_set(said, "%s: unreadable queue file %s, and moving it to corrupt/ failed (%s): %s",
			safe, safe_name, strerror(errno), why);
	free(from);
	free(to);
	return rc;
}

int store_quarantine(const struct store *s, const char *name, const char *why, struct err *said)
{
	char *dir = xasprintf("%s/%02X", s->queue_dir, qid_bucket(name));
	char id[QID_LEN + 1];
	snprintf(id, sizeof id, "%s", name);
	int rc = store_quarantine_at(s, dir, name, id, why, said);
	free(dir);
	return rc;
}
