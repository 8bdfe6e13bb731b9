"""A FUSE file system that forgets, at a simulated power cut, all that
was not made durable: it passes every operation through to a backing
directory, and keeps beside it the durable state, which changes only
as POSIX lets a program rely on:

  - a file's bytes by fsync() or fdatasync() of that file;
  - a directory's names (which file, which directory each one is) by
    fsync() of that directory; a directory reached by a name that is
    not durable is gone, whatever was fsynced inside it.

Stat-ing the path /.powercut on the mount "cuts the power": the backing
tree is rebuilt from the durable state alone (a durable name of a file
whose bytes were never synced is an empty file; hard links stay one
file), and the file system goes on from there, as after a reboot.  The
processes using it must have been killed first.

    powercut_fs.py BACKING MOUNTPOINT

Runs in the foreground until unmounted.  Single-threaded; caches off
(direct_io, zero timeouts) so that the kernel never serves a page or a
name from before a cut.  The FUSE 2 API has no rename flags: a
renameat2(RENAME_NOREPLACE) gets EINVAL, so the store's link + unlink
fallback is what runs here (both are the same to the durable state).
"""

import errno
import os
import shutil
import stat
import sys

sys.path.insert(0, "/usr/lib/python3/dist-packages")
import fusepy  # noqa: E402  (Debian's python3-fusepy)


class PowerCutFS(fusepy.Operations):
    use_ns = True

    def __init__(self, backing):
        self.root = os.path.realpath(backing)
        self.cuts = 0
        self.snapshot_all()

    # ---- the durable state ----

    def real(self, path):
        return self.root + path

    def entries(self, rel):
        """{name: kind} of the live directory rel: ('f', ino, mode,
        uid, gid), ('d', mode, uid, gid) or ('l', target)."""
        out = {}
        base = self.real(rel)
        for name in os.listdir(base):
            st = os.lstat(os.path.join(base, name))
            if stat.S_ISDIR(st.st_mode):
                out[name] = ("d", st.st_mode, st.st_uid, st.st_gid)
            elif stat.S_ISLNK(st.st_mode):
                out[name] = ("l", os.readlink(os.path.join(base, name)))
            else:
                out[name] = ("f", st.st_ino, st.st_mode, st.st_uid, st.st_gid)
        return out

    def snapshot_all(self):
        """Everything there now is durable (at mount, after a cut)."""
        self.dirs = {}      # relative path ("" is the root) -> entries()
        self.data = {}      # inode -> bytes
        for top, dirnames, filenames in os.walk(self.root):
            rel = top[len(self.root):]
            self.dirs[rel] = self.entries(rel)
            for name in filenames:
                p = os.path.join(top, name)
                if not os.path.islink(p):
                    with open(p, "rb") as f:
                        self.data[os.lstat(p).st_ino] = f.read()

    def sync_file(self, fh):
        ino = os.fstat(fh).st_ino
        size = os.fstat(fh).st_size
        self.data[ino] = os.pread(fh, size, 0) if size else b""

    def sync_dir(self, path):
        self.dirs["" if path == "/" else path] = self.entries("" if path == "/" else path)

    def cut(self):
        """Rebuild the tree from what was durable."""
        fresh = self.root + ".cut%d" % self.cuts
        self.cuts += 1
        made = {}   # inode -> path in the new tree (hard links)

        def build(rel, target):
            for name, kind in self.dirs.get(rel, {}).items():
                p = os.path.join(target, name)
                if kind[0] == "d":
                    os.mkdir(p)
                    build(rel + "/" + name, p)
                    os.chown(p, kind[2], kind[3])
                    os.chmod(p, stat.S_IMODE(kind[1]))
                elif kind[0] == "l":
                    os.symlink(kind[1], p)
                elif kind[1] in made:
                    os.link(made[kind[1]], p)
                else:
                    with open(p, "wb") as f:
                        f.write(self.data.get(kind[1], b""))
                    os.chown(p, kind[3], kind[4])
                    os.chmod(p, stat.S_IMODE(kind[2]))
                    made[kind[1]] = p

        os.mkdir(fresh)
        st = os.stat(self.root)
        build("", fresh)
        os.chown(fresh, st.st_uid, st.st_gid)
        os.chmod(fresh, stat.S_IMODE(st.st_mode))
        old, self.root = self.root, fresh
        shutil.rmtree(old)
        self.snapshot_all()

    # ---- pass-through ----

    def owner(self, path):
        uid, gid, _ = fusepy.fuse_get_context()
        os.lchown(self.real(path), uid, gid)

    def getattr(self, path, fh=None):
        if path == "/.powercut":
            self.cut()
            raise fusepy.FuseOSError(errno.ENOENT)
        try:
            st = os.fstat(fh) if fh is not None else os.lstat(self.real(path))
        except OSError as e:
            raise fusepy.FuseOSError(e.errno)
        keys = ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size",
                "st_atime_ns", "st_mtime_ns", "st_ctime_ns", "st_blocks", "st_blksize")
        out = {k: getattr(st, k) for k in keys}
        for k in ("atime", "mtime", "ctime"):
            out["st_" + k] = out.pop("st_%s_ns" % k)
        return out

    def __call__(self, op, *args):
        try:
            return super().__call__(op, *args)
        except OSError as e:
            if isinstance(e, fusepy.FuseOSError):
                raise
            raise fusepy.FuseOSError(e.errno or errno.EIO)

    def access(self, path, amode):
        return 0

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self.real(path))

    def readlink(self, path):
        return os.readlink(self.real(path))

    def mkdir(self, path, mode):
        os.mkdir(self.real(path), mode)
        self.owner(path)

    def rmdir(self, path):
        os.rmdir(self.real(path))

    def unlink(self, path):
        os.unlink(self.real(path))

    def symlink(self, target, source):
        os.symlink(source, self.real(target))
        self.owner(target)

    def link(self, target, source):
        os.link(self.real(source), self.real(target))

    def rename(self, old, new):
        os.rename(self.real(old), self.real(new))

    def chmod(self, path, mode):
        os.chmod(self.real(path), mode)

    def chown(self, path, uid, gid):
        os.lchown(self.real(path), uid, gid)

    def utimens(self, path, times=None):
        os.utime(self.real(path), ns=times, follow_symlinks=False)

    def truncate(self, path, length, fh=None):
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self.real(path), length)

    def statfs(self, path):
        sv = os.statvfs(self.real(path))
        return {k: getattr(sv, k) for k in (
            "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files",
            "f_flag", "f_frsize", "f_namemax")}

    def create(self, path, mode, fi=None):
        fd = os.open(self.real(path), os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
        self.owner(path)
        return fd

    def open(self, path, flags):
        keep = os.O_ACCMODE | os.O_APPEND | os.O_TRUNC
        if flags & os.O_ACCMODE == os.O_WRONLY:     # fsync reads it back
            flags = flags & ~os.O_ACCMODE | os.O_RDWR
        return os.open(self.real(path), flags & keep)

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        return os.pwrite(fh, data, offset)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        os.close(fh)
        return 0

    def fsync(self, path, datasync, fh):
        self.sync_file(fh)
        return 0

    def fsyncdir(self, path, datasync, fh):
        self.sync_dir(path)
        return 0


def main():
    backing, mountpoint = sys.argv[1], sys.argv[2]
    fusepy.FUSE(PowerCutFS(backing), mountpoint, foreground=True, nothreads=True,
                allow_other=True, default_permissions=True, direct_io=True, hard_remove=True,
                use_ino=True, attr_timeout=0, entry_timeout=0, negative_timeout=0)


if __name__ == "__main__":
    main()
