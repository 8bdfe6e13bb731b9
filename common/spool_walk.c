/*
 * spool_walk.c - the store at start-up: tmp/'s leftovers removed, the
 * walk of every queued message by name (for the indexer's thread), and
 * the upgrade from the flat layout.
 *
 * UPGRADE from the flat layout (queue/ID, before buckets): at start the
 * walk links each such file into its bucket, fsyncs the buckets, and
 * only then unlinks the flat names, so a message has a durable name at
 * every moment; a flat name whose bucket name exists already (a crash
 * in the middle) is a second name of the same message and is unlinked.
 *
 * INVARIANT: a file the walk cannot take as a queue file is moved to
 * corrupt/, never deleted; no file is opened to read it (names only).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qstore.h"

size_t store_clean_tmp(struct store *s)
{
	DIR *d = opendir(s->tmp_dir);
	struct dirent *de;
	size_t partial = 0;
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		bool spare = strncmp(de->d_name, SPARE_PREFIX, strlen(SPARE_PREFIX)) == 0;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0 && !spare)
			partial++;
	}
	closedir(d);
	return partial;
}

/* ---- the start-up walk ---- */

#define MOVE_CHUNK 1024	/* flat files linked before their buckets' fsyncs */

struct store_walk {
	struct store *s;
	int qfd;		/* queue/ */
	DIR *flat;		/* queue/ while files of the flat layout may be left */
	unsigned bucket;	/* the bucket being read; QBUCKETS at the end */
	DIR *dir;		/* it, open */
	size_t moved, quarantined;
};

static bool is_bucket_name(const char *n)
{
	return strlen(n) == 2 && strspn(n, "0123456789ABCDEF") == 2;
}

/* The entry's type, without following a link. */
static unsigned char entry_type(int dirfd, const struct dirent *de)
{
	struct stat st;
	if (de->d_type != DT_UNKNOWN)
		return de->d_type;
	if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return DT_UNKNOWN;
	return S_ISREG(st.st_mode) ? DT_REG : S_ISDIR(st.st_mode) ? DT_DIR : DT_UNKNOWN;
}

/* Give the file dirfd/name (a queue file not in its bucket) a name in
 * its bucket: 1 linked (the caller fsyncs the bucket, then unlinks the
 * old name), 0 its bucket has it already (the old name is unlinked
 * here: a second name of one message), -1 on error (note says it). */
static int link_into_bucket(struct store_walk *w, int dirfd, const char *name, struct err *note)
{
	unsigned b = qid_bucket(name);
	char to[4 + QNAME_MAX];
	struct err e;
	if (dirsync_bucket_ready(w->s->dirsync, b, &e) < 0)
		return err_set(note, "%s: cannot move it into its bucket: %s", name, e.msg);
	snprintf(to, sizeof to, "%02X/%s", b, name);
	if (linkat(dirfd, name, w->qfd, to, 0) == 0)
		return 1;
	if (errno == EEXIST) {
		(void)unlinkat(dirfd, name, 0);
		return 0;
	}
	return err_set(note, "%s: cannot move it into bucket %02X: %s", name, b, strerror(errno));
}

/* A file that is no queue file goes to corrupt/; note says so. */
static void not_a_queue_file(struct store_walk *w, const char *dir, const char *name,
			     struct err *note)
{
	w->quarantined += store_quarantine_at(w->s, dir, name, name, "not a queue file", note) == 0;
}

/* Fsync the buckets marked in touched; each entry of names whose bucket
 * is now durable loses its old name in dirfd. */
static void finish_moves(struct store_walk *w, int dirfd, const bool touched[QBUCKETS],
			 char (*names)[QNAME_MAX], size_t n)
{
	bool synced[QBUCKETS] = { false };
	struct dirsync *ds = w->s->dirsync;
	for (unsigned b = 0; b < QBUCKETS; b++)
		if (touched[b])
			synced[b] = dirsync_wait(ds, b, dirsync_renamed(ds, b)) == 0;
	for (size_t i = 0; i < n; i++) {
		if (!synced[qid_bucket(names[i])])
			continue;	/* both names stay; the next start finishes it */
		(void)unlinkat(dirfd, names[i], 0);
		w->moved++;
	}
}

/* UPGRADE: the next MOVE_CHUNK queue files directly in queue/ go into
 * their buckets (fewer when one is trouble: the chunk ends there).
 * WALK_MOVED or WALK_TROUBLE while files may be left; then
 * WALK_UPGRADED when any moved, else WALK_END. */
static enum walk_step move_flat(struct store_walk *w, struct err *note)
{
	char (*names)[QNAME_MAX] = xmalloc(MOVE_CHUNK * sizeof *names);
	bool touched[QBUCKETS] = { false }, trouble = false;
	struct dirent *de = NULL;
	size_t n = 0;
	int fd = dirfd(w->flat);
	while (!trouble && n < MOVE_CHUNK && (de = readdir(w->flat))) {
		char id[QID_LEN + 1];
		uint32_t next;
		unsigned tries;
		unsigned char type = entry_type(fd, de);
		if (de->d_name[0] == '.' || (type == DT_DIR && is_bucket_name(de->d_name)))
			continue;
		if (type != DT_REG || !qname_parse(de->d_name, id, &next, &tries)) {
			not_a_queue_file(w, w->s->queue_dir, de->d_name, note);
			trouble = true;
			continue;
		}
		int linked = link_into_bucket(w, fd, de->d_name, note);
		if (linked == 1) {
			touched[qid_bucket(id)] = true;
			memcpy(names[n++], de->d_name, strlen(de->d_name) + 1);
		}
		trouble = linked < 0;
	}
	finish_moves(w, fd, touched, names, n);
	free(names);
	if (de)
		return trouble ? WALK_TROUBLE : WALK_MOVED;
	closedir(w->flat);
	w->flat = NULL;
	if (!w->moved)
		return WALK_END;
	struct dirsync *ds = w->s->dirsync;	/* the old names stay gone */
	(void)dirsync_wait(ds, SLOT_QUEUE, dirsync_renamed(ds, SLOT_QUEUE));
	err_set(note, "moved %zu messages from the flat queue/ into its buckets", w->moved);
	return WALK_UPGRADED;
}

struct store_walk *store_walk_begin(struct store *s, struct err *e)
{
	struct store_walk *w = xcalloc(1, sizeof *w);
	int fd = -1;
	w->s = s;
	w->qfd = open(s->queue_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->qfd < 0 || (fd = dup(w->qfd)) < 0 || !(w->flat = fdopendir(fd))) {
		err_sys(e, "open %s", s->queue_dir);
		if (fd >= 0)
			close(fd);
		if (w->qfd >= 0)
			close(w->qfd);
		free(w);
		return NULL;
	}
	return w;
}

/* Open the next bucket that exists: 1, or 0 after the last, or -1 when
 * one cannot be read (note says so; the walk goes on past it). */
static int open_bucket(struct store_walk *w, struct err *note)
{
	for (; w->bucket < QBUCKETS; w->bucket++) {
		char name[3];
		snprintf(name, sizeof name, "%02X", w->bucket);
		int fd = openat(w->qfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0 && (w->dir = fdopendir(fd)))
			return 1;
		if (fd >= 0)
			close(fd);
		if (errno != ENOENT) {
			err_set(note, "queue bucket %s/%s cannot be read, its messages wait for the "
				"next start: %s", w->s->queue_dir, name, strerror(errno));
			w->bucket++;
			return -1;
		}
	}
	return 0;
}

/* One entry of the open bucket: WALK_FOUND (a message to return),
 * WALK_TROUBLE (note says what), or WALK_END (nothing to say). */
static enum walk_step walk_entry(struct store_walk *w, const struct dirent *de, struct qfound *out,
				 struct err *note)
{
	char id[QID_LEN + 1], dir[8];
	uint32_t next;
	unsigned tries;
	snprintf(dir, sizeof dir, "%02X", w->bucket);
	if (de->d_name[0] == '.')
		return WALK_END;
	if (entry_type(dirfd(w->dir), de) != DT_REG || !qname_parse(de->d_name, id, &next, &tries)) {
		char *path = xasprintf("%s/%s", w->s->queue_dir, dir);
		not_a_queue_file(w, path, de->d_name, note);
		free(path);
		return WALK_TROUBLE;
	}
	if (qid_bucket(id) != w->bucket) {	/* put here by hand: move it */
		bool touched[QBUCKETS] = { false };
		char names[1][QNAME_MAX];
		int linked = link_into_bucket(w, dirfd(w->dir), de->d_name, note);
		if (linked != 1)
			return linked < 0 ? WALK_TROUBLE : WALK_END;
		touched[qid_bucket(id)] = true;
		memcpy(names[0], de->d_name, strlen(de->d_name) + 1);
		finish_moves(w, dirfd(w->dir), touched, names, 1);
	}
	out->id = qid_value(id);
	out->next_try = next;
	out->tries = (uint16_t)tries;
	out->held = qname_mark(de->d_name) == 'H';
	out->bouncing = qname_mark(de->d_name) == 'B';
	return WALK_FOUND;
}

enum walk_step store_walk_next(struct store_walk *w, struct qfound *out, struct err *note)
{
	enum walk_step step;
	if (w->flat && (step = move_flat(w, note)) != WALK_END)
		return step;
	for (;;) {
		int opened = w->dir ? 1 : open_bucket(w, note);
		if (opened <= 0)
			return opened < 0 ? WALK_TROUBLE : WALK_END;
		struct dirent *de = readdir(w->dir);
		if (!de) {
			closedir(w->dir);
			w->dir = NULL;
			w->bucket++;
			continue;
		}
		if ((step = walk_entry(w, de, out, note)) != WALK_END)
			return step;
	}
}

void store_walk_counts(const struct store_walk *w, size_t *moved, size_t *quarantined)
{
	*moved = w->moved;
	*quarantined = w->quarantined;
}

void store_walk_end(struct store_walk *w)
{
	if (!w)
		return;
	if (w->dir)
		closedir(w->dir);
	if (w->flat)
		closedir(w->flat);
	close(w->qfd);
	free(w);
}
