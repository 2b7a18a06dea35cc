#!/usr/bin/env python3
"""A pass-through FUSE file system that stalls or fails writes on demand.

    python3 faultfs.py BACKING MOUNTPOINT CONTROL_DIR

Everything under MOUNTPOINT is BACKING's, except that while
CONTROL_DIR/stall exists every write, fsync and create sleeps until it is
removed (a disk that stopped answering), and while CONTROL_DIR/fail exists
they fail with EIO (a dying disk). `fusermount -u MOUNTPOINT` unmounts.
Needs fusepy (PyPI) over libfuse2 (Debian's fuse + libfuse2).
"""

import errno
import os
import sys
import time

from fuse import FUSE, FuseOSError, Operations


class FaultFS(Operations):
    def __init__(self, backing, control):
        self.backing = os.path.realpath(backing)
        self.control = control

    def _path(self, path):
        return os.path.join(self.backing, path.lstrip("/"))

    def _gate(self):
        """Where a write waits (stall) or fails (fail)."""
        while os.path.exists(os.path.join(self.control, "stall")):
            time.sleep(0.01)
        if os.path.exists(os.path.join(self.control, "fail")):
            raise FuseOSError(errno.EIO)

    # Metadata and reads go straight through.
    def getattr(self, path, fh=None):
        st = os.lstat(self._path(path))
        keys = ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size", "st_uid")
        return {k: getattr(st, k) for k in keys}

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._path(path))

    def statfs(self, path):
        st = os.statvfs(self._path(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")
        return {k: getattr(st, k) for k in keys}

    def access(self, path, mode):
        if not os.access(self._path(path), mode):
            raise FuseOSError(errno.EACCES)

    def open(self, path, flags):
        return os.open(self._path(path), flags)

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def release(self, path, fh):
        os.close(fh)

    def flush(self, path, fh):
        return 0

    # What a disk does when it writes: gated.
    def create(self, path, mode, fi=None):
        self._gate()
        return os.open(self._path(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def write(self, path, data, offset, fh):
        self._gate()
        return os.pwrite(fh, data, offset)

    def fsync(self, path, datasync, fh):
        self._gate()
        if datasync:
            os.fdatasync(fh)
        else:
            os.fsync(fh)
        return 0

    def fsyncdir(self, path, datasync, fh):
        self._gate()
        return 0

    def truncate(self, path, length, fh=None):
        self._gate()
        with open(self._path(path), "r+b") as f:
            f.truncate(length)

    def mkdir(self, path, mode):
        return os.mkdir(self._path(path), mode)

    def rmdir(self, path):
        return os.rmdir(self._path(path))

    def unlink(self, path):
        return os.unlink(self._path(path))

    def rename(self, old, new):
        return os.rename(self._path(old), self._path(new))

    def chmod(self, path, mode):
        return os.chmod(self._path(path), mode)

    def utimens(self, path, times=None):
        return os.utime(self._path(path), times)


if __name__ == "__main__":
    backing, mountpoint, control = sys.argv[1:4]
    FUSE(FaultFS(backing, control), mountpoint, foreground=True, nothreads=False,
         big_writes=True, max_write=1 << 20)
