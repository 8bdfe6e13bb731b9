/*
 * pickup_take.h - the hand-over of a file from pickup/new/ to the queue
 * (the protocol is at the top of pickup_take.c).
 *
 * A file is taken by renaming it to pickup/taking/ID, ID a new queue ID
 * that no queued message has; it is committed under that ID and only
 * then removed; a file whose commit failed goes back to new/.  At start,
 * before anything is taken, taking_recover() settles what a crash left
 * in taking/.  All functions block (thread pool, or the start).
 */
#ifndef OUTBOXD_PICKUP_TAKE_H
#define OUTBOXD_PICKUP_TAKE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/queue.h"

struct pickup_dirs {
	char *new_dir, *taking_dir, *bad_dir;	/* SPOOL/pickup/... */
};

void pickup_dirs_init(struct pickup_dirs *pd, const char *spool);
void pickup_dirs_free(struct pickup_dirs *pd);

enum take_result { TAKEN, TAKE_GONE, TAKE_NO_ROOM, TAKE_BAD };
/* Steps 1 and 2: new/name, a regular file, goes to taking/ID (id set),
 * ID new and not queued, when the spool has min_free and the file's
 * size free (*avail: the octets free).  TAKE_GONE: it is not there;
 * TAKE_NO_ROOM: it stays; TAKE_BAD: why says why it cannot be taken
 * (it stays in new/). */
enum take_result take_file(struct store *s, const struct pickup_dirs *pd, const char *name,
			   uint64_t min_free, char id[QID_LEN + 1], uint64_t *avail, char *why,
			   size_t n);
/* The message of taking/id is committed (durably): the file goes. */
void taking_remove(const struct pickup_dirs *pd, const char *id);
/* Move taking/id to dir (new/ or bad/) as name, or name.N when that is
 * taken; *to gets the path (free it); -1 with errno. */
int taking_move(const struct pickup_dirs *pd, const char *id, const char *dir, const char *name,
		char **to);
/* A file that cannot be a message, new/name (id NULL) or taking/id,
 * goes to bad/name (or name.N); logged with why either way; -1 when it
 * could not be moved. */
int move_to_bad(const struct pickup_dirs *pd, const char *name, const char *id, const char *why);
/* Its commit failed: taking/id goes back to new/name (or name.N);
 * logged when it cannot (then it goes back at the next start). */
void taking_give_back(const struct pickup_dirs *pd, const char *id, const char *name);
/* Start-up, before any file is taken: every taking/ID whose ID is
 * queued is removed (once its bucket is fsynced), every other goes
 * back to new/ to be taken again. */
void taking_recover(const struct store *s, const struct pickup_dirs *pd);

#endif
