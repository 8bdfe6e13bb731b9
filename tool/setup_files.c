/*
 * setup_files.c - what `outbox setup` writes, and the reload (setup.h).
 *
 * The snippet is checked before it is in place: the configuration's
 * files are hard-linked into a temporary directory beside it (the same
 * inodes, so the trust rule of common/conftrust.c judges the very files
 * outboxd will read), the new snippet is written there, and the set is
 * loaded as `outboxd -t` loads it; only then is the snippet renamed
 * into outbox.conf.d/.  A failed check leaves the running configuration
 * as it was.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/queue.h"
#include "setup.h"
#include "tool.h"

static char *dir_of(const char *path)
{
	char *d = xstrdup(path), *slash = strrchr(d, '/');
	if (!slash) {
		free(d);
		return xstrdup(".");
	}
	slash[slash == d] = '\0';
	return d;
}

int setup_write_file(const char *path, const char *text, size_t len, gid_t gid, bool replace, struct err *e)
{
	char *dir = dir_of(path);
	char *tmp = xasprintf("%s/.%s.tmp%ld", dir, strrchr(path, '/') ? strrchr(path, '/') + 1 : path,
			      (long)getpid());
	int rc = -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		err_sys(e, "create %s", tmp);
		goto out;
	}
	if (fchown(fd, 0, gid) < 0 || fchmod(fd, 0640) < 0 || write_all(fd, text, len) < 0 || fsync(fd) < 0) {
		err_sys(e, "write %s", tmp);
		close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if ((replace ? rename(tmp, path) : rename_noreplace(tmp, path)) < 0) {
		int saved = errno;
		err_sys(e, "%s", path);
		unlink(tmp);
		errno = saved;
		goto out;
	}
	rc = fsync_dir(dir, e);
out:
	free(tmp);
	free(dir);
	return rc;
}

/* The *.conf names of a directory but skip (the snippet being replaced). */
static int link_snippets(const char *from, const char *to, const char *skip, struct err *e)
{
	DIR *d = opendir(from);
	if (!d)
		return errno == ENOENT ? 0 : err_sys(e, "%s", from);
	int rc = 0;
	for (struct dirent *de; rc == 0 && (de = readdir(d));) {
		size_t n = strlen(de->d_name);
		if (de->d_name[0] == '.' || n < 6 || strcmp(de->d_name + n - 5, ".conf") != 0
		    || strcmp(de->d_name, skip) == 0)
			continue;
		char *a = xasprintf("%s/%s", from, de->d_name), *b = xasprintf("%s/%s", to, de->d_name);
		if (link(a, b) < 0)	/* (a symbolic link is linked as one: refused, as outboxd would) */
			rc = err_sys(e, "link %s", a);
		free(a);
		free(b);
	}
	closedir(d);
	return rc;
}

static void remove_tree(const char *tmp)
{
	char *sub = xasprintf("%s/outbox.conf.d", tmp);
	const char *const dirs[] = { sub, tmp };
	for (size_t i = 0; i < 2; i++) {
		DIR *d = opendir(dirs[i]);
		for (struct dirent *de; d && (de = readdir(d));)
			if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
				(void)unlinkat(dirfd(d), de->d_name, 0);
		if (d)
			closedir(d);
		(void)rmdir(dirs[i]);
	}
	free(sub);
}

/* errors name the temporary directory: name the real one instead */
static void rename_in_errors(struct buf *errors, const char *tmp, const char *dir)
{
	struct buf out;
	buf_init(&out);
	size_t n = strlen(tmp);
	for (const char *p = errors->data; p && *p;) {
		const char *hit = strstr(p, tmp);
		size_t keep = hit ? (size_t)(hit - p) : strlen(p);
		buf_add(&out, p, keep);
		if (!hit)
			break;
		buf_adds(&out, dir);
		p = hit + n;
	}
	buf_reset(errors);
	buf_add(errors, out.data ? out.data : "", out.len);
	buf_free(&out);
}

/* The configuration of tmp/NAME with the new snippet, as outboxd -t
 * would load it; NULL with errors or e. */
static struct config *check_copy(const char *conf_path, const char *dir, const char *tmp, const char *text,
				 gid_t gid, struct buf *errors, struct err *e)
{
	char *main_copy = xasprintf("%s/%s", tmp, strrchr(conf_path, '/') ? strrchr(conf_path, '/') + 1 : conf_path);
	char *real_d = xasprintf("%s/outbox.conf.d", dir), *tmp_d = xasprintf("%s/outbox.conf.d", tmp);
	char *snippet = xasprintf("%s/" SETUP_SNIPPET, tmp_d);
	struct config *c = NULL;
	if (link(conf_path, main_copy) < 0)
		err_sys(e, "link %s", conf_path);
	else if (mkdir(tmp_d, 0755) < 0 || chmod(tmp_d, 0755) < 0)
		err_sys(e, "mkdir %s", tmp_d);
	else if (link_snippets(real_d, tmp_d, SETUP_SNIPPET, e) == 0
		 && setup_write_file(snippet, text, strlen(text), gid, false, e) == 0) {
		c = config_load(main_copy, 0, errors);
		if (!c) {
			rename_in_errors(errors, tmp, dir);
			err_set(e, "the configuration with the new %s is refused", SETUP_SNIPPET);
		}
	}
	free(snippet);
	free(tmp_d);
	free(real_d);
	free(main_copy);
	return c;
}

struct config *setup_install_snippet(const char *conf_path, const char *text, gid_t gid, bool force,
				     struct buf *errors, struct err *e)
{
	char *dir = dir_of(conf_path);
	char *real_d = xasprintf("%s/outbox.conf.d", dir);
	char *tmp = xasprintf("%s/.outbox-setup-XXXXXX", dir);
	struct config *c = NULL;
	if (ensure_dir(real_d, 0755, e) < 0)
		goto out;
	if (!mkdtemp(tmp)) {
		err_sys(e, "mkdtemp in %s", dir);
		goto out;
	}
	c = check_copy(conf_path, dir, tmp, text, gid, errors, e);
	if (c) {
		char *from = xasprintf("%s/outbox.conf.d/" SETUP_SNIPPET, tmp);
		char *to = xasprintf("%s/" SETUP_SNIPPET, real_d);
		if ((force ? rename(from, to) : rename_noreplace(from, to)) < 0 || fsync_dir(real_d, e) < 0) {
			err_sys(e, "%s", to);
			config_free(c);
			c = NULL;
		}
		free(from);
		free(to);
	}
	remove_tree(tmp);
out:
	free(tmp);
	free(real_d);
	free(dir);
	return c;
}

int setup_token_dir(const char *path, uid_t uid, gid_t gid, struct err *e)
{
	char *dir = dir_of(path);
	struct stat st;
	int rc = 0;
	if (lstat(dir, &st) < 0) {
		rc = ensure_dir(dir, 0700, e);
		if (rc == 0 && chown(dir, uid, gid) < 0)
			rc = err_sys(e, "chown %s", dir);
	}
	free(dir);
	return rc;
}

/* Is pid's service outboxd.service (systemd runs it)? */
static bool run_by_systemd(long pid)
{
	char path[64], line[512];
	bool yes = false;
	if (access("/run/systemd/system", F_OK) < 0)
		return false;
	snprintf(path, sizeof path, "/proc/%ld/cgroup", pid);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof line, f))
		yes |= strstr(line, "/outboxd.service") != NULL;
	if (f)
		fclose(f);
	return yes;
}

static bool is_outboxd(long pid)
{
	char path[64], comm[32] = "";
	snprintf(path, sizeof path, "/proc/%ld/comm", pid);
	FILE *f = fopen(path, "r");
	if (f) {
		if (!fgets(comm, sizeof comm, f))
			comm[0] = '\0';
		fclose(f);
	}
	return strcmp(comm, "outboxd\n") == 0;
}

int setup_reload(const struct config *c)
{
	long pid = store_daemon_pid(c->queue.spool);
	if (pid <= 0 || !is_outboxd(pid)) {
		printf("outboxd is not running: it reads the new configuration when it starts "
		       "(systemctl start outboxd).\n");
		return 1;
	}
	fflush(stdout);
	if (run_by_systemd(pid)) {
		pid_t child = fork();
		if (child == 0) {
			execl("/bin/systemctl", "systemctl", "reload", "outboxd", (char *)NULL);
			_exit(127);
		}
		int status = 0;
		if (child > 0 && waitpid(child, &status, 0) == child && WIFEXITED(status)
		    && WEXITSTATUS(status) == 0) {
			printf("outboxd reloaded: systemctl reload outboxd.\n");
			return 0;
		}
		printf("systemctl reload outboxd failed: see systemctl status outboxd.\n");
		return 1;
	}
	long before = control_reloads(c);
	if (kill((pid_t)pid, SIGHUP) < 0) {
		printf("outboxd (pid %ld) could not be reloaded: %s.\n", pid, strerror(errno));
		return 1;
	}
	/* done once outbox status counts one more reload (up to 10 s: a
	 * refused configuration is logged and not counted) */
	for (int i = 0; i < 200 && before >= 0 && control_reloads(c) <= before; i++)
		usleep(50000);
	if (before >= 0 && control_reloads(c) <= before) {
		printf("outboxd (pid %ld) did not take the new configuration: its log says why.\n", pid);
		return 1;
	}
	printf("outboxd reloaded: SIGHUP to pid %ld (from %s/lock).\n", pid, c->queue.spool);
	return 0;
}
