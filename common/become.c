/*
 * become.c - taking [queue] user's identity for good (become.h).
 */
#include "become.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/syscall.h>
#include <unistd.h>

int user_lookup(const char *name, uid_t *uid, gid_t *gid, struct err *e)
{
	errno = 0;
	struct passwd *pw = getpwnam(name);
	if (!pw)
		return err_set(e, "[queue] user: no such user '%s' (create it, e.g. with systemd-sysusers)", name);
	if (pw->pw_uid == 0)
		return err_set(e, "[queue] user: '%s' is root; outboxd never runs as root", name);
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}

/* Does the process still hold any capability (permitted or effective)? */
static int holds_capabilities(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3] = { { 0, 0, 0 } };
	if (syscall(SYS_capget, &h, d) < 0)
		return 1;	/* cannot tell: as if it did */
	for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		if (d[i].permitted || d[i].effective)
			return 1;
	return 0;
}

int user_become(const char *name, uid_t uid, gid_t gid, struct err *e)
{
	if (initgroups(name, gid) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return err_sys(e, "cannot become user %s", name);
	if (setuid(0) == 0 || holds_capabilities())
		return err_set(e, "cannot become user %s: privileges were not dropped", name);
	return 0;
}
