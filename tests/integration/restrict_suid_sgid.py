"""Run a command (argv[1:]) under the seccomp filter systemd's
RestrictSUIDSGID=yes installs: making a file or directory with, or
changing a mode to, set-user-ID or set-group-ID fails with EPERM,
whether or not the call would have failed anyway (python3-seccomp)."""

import errno
import os
import sys

import seccomp

SUGID = 0o6000


def main():
    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name, arg in (("mkdir", 1), ("mkdirat", 2), ("chmod", 1), ("fchmod", 1), ("fchmodat", 2),
                      ("mknod", 1), ("mknodat", 2), ("creat", 1)):
        for bit in (0o4000, 0o2000):
            f.add_rule(seccomp.ERRNO(errno.EPERM), name, seccomp.Arg(arg, seccomp.MASKED_EQ, bit, bit))
    f.load()
    os.execv(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
