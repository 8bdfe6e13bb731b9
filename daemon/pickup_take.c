/*
 * pickup_take.c - the hand-over of a file from pickup/new/ to the queue
 * (pickup_take.h).  Blocking: the thread pool's, and the start's.
 *
 * TAKING.  A file in new/ was acknowledged to its sender (sendmail's
 * fallback exits 0 once it is there), so it may leave pickup/ only as a
 * committed message, and only its own.  For a file new/NAME:
 *   1. new/NAME is a regular file and the spool has [queue] min_free
 *      and its size free (else it stays in new/ for a later scan);
 *      ID = store_new_id(), and no message with that ID is queued
 *      (store_has; qid.c UNIQUE makes this hold already, the check
 *      makes it exact whatever the clock did);
 *   2. rename(new/NAME, taking/ID) without replacing: from here the
 *      file is outboxd's alone (taking/ is 0700), nobody can swap it;
 *   3. read, check and compose it from taking/ID; a bad one goes to
 *      bad/NAME;
 *   4. commit it under ID (queue.c COMMIT PROTOCOL: durable on return);
 *   5. unlink(taking/ID), on the commit's thread, before the message is
 *      indexed, so before it can be delivered.
 * A commit that failed (no room, a write error) leaves no message; the
 * file goes back to new/NAME (or NAME.N) and is taken again later.
 *
 * So a queue file named ID can only have come from taking/ID: no other
 * message is ever given an ID that was queued or in taking/ (steps 1
 * and 2), and a file leaves taking/ only once its message is durable
 * (step 5) or back to new/.
 *
 * A KILL -9 at each point (taking_recover() runs at start, before
 * anything is taken, and looks only in taking/):
 *   before 2      the file is in new/, nothing queued: taken at start.
 *   2 to 4's rename into queue/XX (reading, tmp/ID written, fsynced)
 *                 taking/ID, no message ID (tmp/ is cleared at start):
 *                 it goes back to new/ as ID (or ID.N) and is taken
 *                 again under a new ID.
 *   4's rename to 5 (the bucket's fsync may not have run)
 *                 taking/ID and queue/XX/ID: the bucket is fsynced,
 *                 then taking/ID removed; the message goes once.  (Also
 *                 when the kill hit a failed commit before it took its
 *                 name back: the bytes were fsynced in 4, and once the
 *                 name is, the message stands.)
 *   after 5       nothing of it is left in pickup/.
 *   giving back   taking/ID without a message: back to new/ at start.
 * Nothing is removed unless its own message is durable, and nothing
 * is queued twice.  Two cases may send a message twice, never lose it:
 * an unlink in 5 that fails (logged) when the message is delivered
 * before the next start; and a power cut after 4 on a file system that
 * does not keep metadata changes in order (ext4's and XFS's journals
 * do: the bucket's fsync in 4 carries the rename of 2), which may bring
 * the file back to new/.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/log.h"
#include "pickup_take.h"

#define TAKE_TRIES 100	/* IDs tried before giving up (each one queued: cannot be) */

void pickup_dirs_init(struct pickup_dirs *pd, const char *spool)
{
	pd->new_dir = xasprintf("%s/pickup/new", spool);
	pd->taking_dir = xasprintf("%s/pickup/taking", spool);
	pd->bad_dir = xasprintf("%s/pickup/bad", spool);
}

void pickup_dirs_free(struct pickup_dirs *pd)
{
	free(pd->new_dir);
	free(pd->taking_dir);
	free(pd->bad_dir);
	memset(pd, 0, sizeof *pd);
}

#define ROOM_MARGIN (16 * 1024)	/* what the intake adds to a file: Received:, the queue header */

static int move_id(struct store *s, const struct pickup_dirs *pd, const char *name,
		   char id[QID_LEN + 1])
{
	char *from = xasprintf("%s/%s", pd->new_dir, name);
	int rc = -1, saved = EEXIST;
	for (int i = 0; i < TAKE_TRIES && rc < 0 && saved == EEXIST; i++) {
		store_new_id(s, id);
		if (store_has(s, id))
			continue;
		char *to = xasprintf("%s/%s", pd->taking_dir, id);
		rc = rename_noreplace(from, to);
		saved = errno;
		free(to);
	}
	free(from);
	errno = saved;
	return rc;
}

enum take_result take_file(struct store *s, const struct pickup_dirs *pd, const char *name,
			   uint64_t min_free, char id[QID_LEN + 1], uint64_t *avail, char *why,
			   size_t n)
{
	struct stat st;
	char *path = xasprintf("%s/%s", pd->new_dir, name);
	int rc = lstat(path, &st);
	free(path);
	if (rc < 0 && errno == ENOENT)
		return TAKE_GONE;
	if (rc < 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, n, "%s", rc < 0 ? strerror(errno) : S_ISLNK(st.st_mode) ? "a symbolic link"
								      : "not a regular file");
		return TAKE_BAD;
	}
	if (!store_has_room(s, min_free, (uint64_t)st.st_size + ROOM_MARGIN, avail))
		return TAKE_NO_ROOM;
	if (move_id(s, pd, name, id) == 0)
		return TAKEN;
	if (errno == ENOENT)
		return TAKE_GONE;
	snprintf(why, n, "cannot move it to pickup/taking/: %s", strerror(errno));
	return TAKE_BAD;
}

void taking_remove(const struct pickup_dirs *pd, const char *id)
{
	char *path = xasprintf("%s/%s", pd->taking_dir, id);
	if (unlink(path) < 0)	/* left for the next start (TAKING) */
		log_err("pickup/taking/%s: cannot remove it after queueing it: %s", id, strerror(errno));
	free(path);
}

int taking_move(const struct pickup_dirs *pd, const char *id, const char *dir, const char *name,
		char **to)
{
	char *from = xasprintf("%s/%s", pd->taking_dir, id);
	int rc = rename_aside(from, dir, name, to);
	free(from);
	return rc;
}

int move_to_bad(const struct pickup_dirs *pd, const char *name, const char *id, const char *why)
{
	char *from = xasprintf("%s/%s", pd->new_dir, name), *to = NULL;
	int rc = id ? taking_move(pd, id, pd->bad_dir, name, &to) : rename_aside(from, pd->bad_dir, name, &to);
	char safe[NAME_MAX * 4 + 1];
	log_safe(name, safe, sizeof safe);
	if (rc == 0)
		log_warn("pickup/new/%s: moved to pickup/bad/%s: %s", safe, strrchr(to, '/') + 1, why);
	else if (id)	/* out of new/: not tried again before a restart */
		log_err("pickup/new/%s: cannot be taken (%s), and moving it from pickup/taking/%s to "
			"pickup/bad/ failed: %s (left there)", safe, why, id, strerror(errno));
	else
		log_err("pickup/new/%s: cannot be taken (%s), and moving it to pickup/bad/ failed: %s"
			" (left there; said once)", safe, why, strerror(errno));
	free(from);
	free(to);
	return rc;
}

void taking_give_back(const struct pickup_dirs *pd, const char *id, const char *name)
{
	char *to = NULL, safe[NAME_MAX * 4 + 1];
	log_safe(name, safe, sizeof safe);
	if (taking_move(pd, id, pd->new_dir, name, &to) < 0)
		log_err("pickup/taking/%s (pickup/new/%s): cannot move it back to pickup/new/: %s "
			"(it goes back at the next start)", id, safe, strerror(errno));
	free(to);
}

/* One entry of taking/ at start (TAKING, "a kill -9 at each point"). */
static void recover_one(const struct store *s, const struct pickup_dirs *pd, const char *name)
{
	char safe[NAME_MAX * 4 + 1], *to = NULL;
	struct err e;
	log_safe(name, safe, sizeof safe);
	if (qid_valid(name) && store_has(s, name)) {
		if (store_sync_bucket(s, name, &e) < 0) {
			log_err("pickup/taking/%s: queued before a crash, but left there: %s", safe, e.msg);
			return;
		}
		char *path = xasprintf("%s/%s", pd->taking_dir, name);
		if (unlink(path) == 0)
			log_info("pickup/taking/%s: queued before a crash: removed", safe);
		else
			log_err("pickup/taking/%s: queued before a crash; cannot remove it: %s", safe,
				strerror(errno));
		free(path);
	} else if (taking_move(pd, name, pd->new_dir, name, &to) == 0) {
		log_info("pickup/taking/%s: not queued before a crash: back to pickup/new/%s", safe,
			 strrchr(to, '/') + 1);
	} else {
		log_err("pickup/taking/%s: not queued before a crash; cannot move it back to "
			"pickup/new/: %s", safe, strerror(errno));
	}
	free(to);
}

void taking_recover(const struct store *s, const struct pickup_dirs *pd)
{
	DIR *dp = opendir(pd->taking_dir);
	struct dirent *de;
	if (!dp) {
		log_err("opendir %s: %s", pd->taking_dir, strerror(errno));
		return;
	}
	while ((de = readdir(dp)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			recover_one(s, pd, de->d_name);
	closedir(dp);
}
