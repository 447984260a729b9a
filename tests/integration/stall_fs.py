#!/usr/bin/env python3
"""A pass-through FUSE filesystem that stalls one channel, as a network
filesystem that hangs on one file does.

  stall_fs.py ROOT MOUNTPOINT --stall-s S [--log FILE]

Every operation goes to ROOT. The first channel directory (channels/<name>)
created through the mount after it starts is the stalled one: the first write
to a file under it sleeps S seconds before it is carried out; writes after it
queue behind it as they would behind a hung server. Everything else passes
straight through, concurrently (one thread per request). --log FILE gets a
line when the stall starts and when it ends.
"""

import argparse
import errno
import os
import threading
import time

from fusepy import FUSE, FuseOSError, Operations


class StallFs(Operations):
    def __init__(self, root, stall_s, log):
        self.root = root
        self.stall_s = stall_s
        self.log = log
        self.stalled_dir = None
        self.stalled = False
        self.mutex = threading.Lock()
        self.stall_over = threading.Event()

    def _path(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def _note(self, line):
        if self.log:
            with open(self.log, "a") as f:
                f.write(f"{time.time():.3f} {line}\n")

    def _maybe_stall(self, path):
        if self.stalled_dir is None or not path.startswith(self.stalled_dir + "/"):
            return
        with self.mutex:
            first = not self.stalled
            self.stalled = True
        if first:
            self._note(f"stalling writes under {self.stalled_dir} for {self.stall_s} s")
            time.sleep(self.stall_s)
            self._note("stall over")
            self.stall_over.set()
        else:
            self.stall_over.wait()

    def __call__(self, op, path, *args):
        try:
            return super().__call__(op, path, *args)
        except OSError as e:
            raise FuseOSError(e.errno or errno.EIO) from None

    def access(self, path, mode):
        if not os.access(self._path(path), mode):
            raise FuseOSError(errno.EACCES)

    def chmod(self, path, mode):
        os.chmod(self._path(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self._path(path), uid, gid)

    def getattr(self, path, fh=None):
        st = os.lstat(self._path(path))
        return {key: getattr(st, key) for key in (
            "st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink",
            "st_size", "st_uid", "st_ino")}

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._path(path))

    def readlink(self, path):
        return os.readlink(self._path(path))

    def mkdir(self, path, mode):
        os.mkdir(self._path(path), mode)
        parts = path.strip("/").split("/")
        with self.mutex:
            if self.stalled_dir is None and len(parts) == 2 and parts[0] == "channels":
                self.stalled_dir = path

    def rmdir(self, path):
        os.rmdir(self._path(path))

    def mknod(self, path, mode, dev):
        os.mknod(self._path(path), mode, dev)

    def unlink(self, path):
        os.unlink(self._path(path))

    def symlink(self, target, source):
        os.symlink(source, self._path(target))

    def rename(self, old, new):
        os.rename(self._path(old), self._path(new))

    def link(self, target, source):
        os.link(self._path(source), self._path(target))

    def utimens(self, path, times=None):
        os.utime(self._path(path), times)

    def statfs(self, path):
        st = os.statvfs(self._path(path))
        return {key: getattr(st, key) for key in (
            "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree",
            "f_files", "f_flag", "f_frsize", "f_namemax")}

    def open(self, path, flags):
        return os.open(self._path(path), flags)

    def create(self, path, mode, fi=None):
        return os.open(self._path(path), os.O_RDWR | os.O_CREAT | os.O_TRUNC, mode)

    def read(self, path, length, offset, fh):
        return os.pread(fh, length, offset)

    def write(self, path, data, offset, fh):
        self._maybe_stall(path)
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self._path(path), length)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        os.close(fh)

    def fsync(self, path, datasync, fh):
        if datasync:
            os.fdatasync(fh)
        else:
            os.fsync(fh)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("mountpoint")
    parser.add_argument("--stall-s", type=float, required=True)
    parser.add_argument("--log")
    args = parser.parse_args()
    FUSE(StallFs(os.path.realpath(args.root), args.stall_s, args.log),
         args.mountpoint, foreground=True, nothreads=False, allow_other=True,
         default_permissions=True, no_remote_lock=True)


if __name__ == "__main__":
    main()
