/*
 * qdefer.c - the side files of a queued message in SPOOL/defer/XX/:
 * the last reply of each deferred recipient, the "still trying" mark,
 * the mark of the summary report.  All are removed with the message.
 *
 * SPOOL/defer/XX/ID holds, for a message that was deferred, one line per
 * recipient still waiting: the address, a tab, the reply of its last
 * attempt (one line, printable).  For outbox queue and show only: it is
 * rewritten at each deferral without a sync (a crash may lose or tear
 * it, and costs nothing else) and removed with the message.
 *
 * The report mark alone is synced (file and directory): it is what keeps
 * a crash from reporting the same failures twice (store_note_report).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "qstore.h"
#include "smtp.h"

static char *reasons_path(const struct store *s, const char *id)
{
	return xasprintf("%s/defer/%02X/%.*s", s->spool, qid_bucket(id), QID_LEN, id);
}

void store_note_reasons(const struct store *s, const char *id, const struct envelope *env,
			const char *const *reasons, const char *relay)
{
	struct buf b;
	char safe[600];
	buf_init(&b);
	if (relay && *relay)	/* "@relay" cannot be an address */
		buf_printf(&b, "@relay\t%s\n", log_safe(relay, safe, sizeof safe));
	for (size_t i = 0; i < env->nrcpt; i++) {
		if (!reasons[i])
			continue;
		char line[SMTP_REPLY_SHOWN + 1];	/* the whole reply, as smtp_reply_line keeps it */
		buf_printf(&b, "%s\t%s\n", env->rcpt[i].addr, log_safe(reasons[i], line, sizeof line));
	}
	char *path = reasons_path(s, id), *dir = xasprintf("%s/defer/%02X", s->spool, qid_bucket(id));
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT && mkdir(dir, 0700) == 0)
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0) {
		(void)write_all(fd, b.data ? b.data : "", b.len);
		close(fd);
	}
	free(path);
	free(dir);
	buf_free(&b);
}

char *store_reason(const struct store *s, const char *id, const char *addr)
{
	char *path = reasons_path(s, id), *found = NULL, *line = NULL;
	FILE *f = fopen(path, "re");
	size_t cap = 0, alen = strlen(addr);
	ssize_t n;
	while (f && !found && (n = getline(&line, &cap, f)) > 0) {
		if ((size_t)n > alen + 1 && strncmp(line, addr, alen) == 0 && line[alen] == '\t') {
			line[strcspn(line, "\n")] = '\0';
			found = xstrdup(line + alen + 1);
		}
	}
	if (f)
		fclose(f);
	free(line);
	free(path);
	return found;
}

void qdefer_forget(const struct store *s, const char *name)
{
	if (strlen(name) <= QID_LEN)
		return;	/* never deferred: none kept */
	char *path = reasons_path(s, name), *warned = xasprintf("%s.warned", path);
	char *report = xasprintf("%s.report", path);
	(void)unlink(path);
	(void)unlink(warned);
	(void)unlink(report);
	free(path);
	free(warned);
	free(report);
}

bool store_warned(const struct store *s, const char *id)
{
	char *path = reasons_path(s, id), *warned = xasprintf("%s.warned", path);
	bool yes = access(warned, F_OK) == 0;
	free(path);
	free(warned);
	return yes;
}

void store_note_warned(const struct store *s, const char *id)
{
	char *path = reasons_path(s, id), *warned = xasprintf("%s.warned", path);
	int fd = open(warned, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	free(path);
	free(warned);
}

int store_note_report(const struct store *s, const char *id, unsigned attempt, const char *report_id,
		      struct err *e)
{
	char *path = reasons_path(s, id), *mark = xasprintf("%s.report", path);
	char *dir = xasprintf("%s/defer/%02X", s->spool, qid_bucket(id)), *top = xasprintf("%s/defer", s->spool);
	int rc = 0, fd = open(mark, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	bool made = false;
	if (fd < 0 && errno == ENOENT && mkdir(dir, 0700) == 0) {
		made = true;
		fd = open(mark, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	}
	char line[QID_LEN + 16];
	snprintf(line, sizeof line, "%.*s %u\n", QID_LEN, report_id, attempt);
	if (fd < 0)
		rc = err_sys(e, "open %s", mark);
	else if (write_all(fd, line, strlen(line)) < 0 || fsync(fd) < 0)
		rc = err_sys(e, "write %s", mark);
	if (fd >= 0)
		close(fd);
	if (rc == 0)
		rc = fsync_dir(dir, e);
	if (rc == 0 && made)
		rc = fsync_dir(top, e);
	free(path);
	free(mark);
	free(dir);
	free(top);
	return rc;
}

bool store_report_of(const struct store *s, const char *id, unsigned attempt, char out[QID_LEN + 1])
{
	char *path = reasons_path(s, id), *mark = xasprintf("%s.report", path);
	int fd = open(mark, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	char line[QID_LEN + 16] = "";
	ssize_t n = fd >= 0 ? read(fd, line, sizeof line - 1) : -1;
	if (fd >= 0)
		close(fd);
	free(path);
	free(mark);
	unsigned at;
	char nl;
	line[n > 0 ? n : 0] = '\0';
	if (n <= QID_LEN || line[QID_LEN] != ' ' || sscanf(line + QID_LEN, " %u%c", &at, &nl) != 2 || nl != '\n'
	    || at != attempt)
		return false;
	line[QID_LEN] = '\0';
	if (!qid_valid(line))
		return false;
	memcpy(out, line, QID_LEN + 1);
	return true;
}
