"""Durable filesystem primitives: fsync of files and directories, syncfs, atomic writes.

Also the ``crashpoint`` test hook used by the crash-consistency tests.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import signal
import sys
from pathlib import Path
from typing import Any

CRASH_ENV = "TRADEOPS_CRASH_AT"


class _CrashCounter:
    """How many crash points this process has passed (only while the hook is enabled)."""

    def __init__(self) -> None:
        self.count = 0
        self.labels: list[str] = []


_CRASH = _CrashCounter()


def crashpoint(label: str) -> None:
    """Test hook: SIGKILL this process at the N-th crash point when ``TRADEOPS_CRASH_AT=N``.

    Unset or empty (the normal case), it does nothing but one environment lookup.
    ``TRADEOPS_CRASH_AT=0`` counts the crash points passed without ever crashing
    (see ``crashpoint_count``). Before the kill, ``crashpoint <N> <label>`` is
    written to stderr so that a test can say where the process died.
    """
    setting = os.environ.get(CRASH_ENV)
    if not setting:
        return
    try:
        crash_at = int(setting)
    except ValueError:
        return
    _CRASH.count += 1
    _CRASH.labels.append(label)
    if crash_at > 0 and _CRASH.count >= crash_at:
        os.write(2, f"crashpoint {_CRASH.count} {label}\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)


def crashpoint_count() -> int:
    """Crash points passed so far in this process (0 when the hook is disabled)."""
    return _CRASH.count


def crashpoint_labels() -> list[str]:
    """Labels of the crash points passed so far, in order (empty when disabled)."""
    return list(_CRASH.labels)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (os.write may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_dir(path: Path) -> None:
    """Flush a directory with fsync so that renames and new entries in it survive a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path, *, files: bool = True) -> None:
    """Flush with fsync every file and directory under ``root`` (bottom-up), then ``root``.

    Symlinks are not followed or opened: they are made durable by the fsync of
    the directory that holds them. With ``files=False`` only the directories are
    flushed (after a ``syncfs`` has already flushed the files).
    """
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames if files else ():
            path = Path(dirpath) / name
            if path.is_symlink():
                continue
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            crashpoint("fsync_tree:file")
        fsync_dir(Path(dirpath))
        crashpoint("fsync_tree:dir")


# syncfs(2) errors that mean "not available here" (old libc or kernel, seccomp):
# the caller then falls back to fsync file by file.
_SYNCFS_UNAVAILABLE = frozenset({errno.ENOSYS, errno.EPERM, errno.EOPNOTSUPP})


@functools.cache
def _libc_syncfs() -> Any:
    """The C library's ``syncfs`` function, or None (not Linux, or a libc without it)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        func = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int]
    func.restype = ctypes.c_int
    return func


def syncfs(path: Path) -> bool:
    """Flush the whole filesystem that holds ``path``; False when syncfs is unavailable.

    One syncfs(2) call. Raises OSError when it fails (EIO, ENOSPC, EDQUOT: since
    Linux 5.8 syncfs reports writeback errors of the filesystem).
    """
    func = _libc_syncfs()
    if func is None:
        return False
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if func(fd) == 0:
            return True
        err = ctypes.get_errno()
    finally:
        os.close(fd)
    if err in _SYNCFS_UNAVAILABLE:
        return False
    raise OSError(err, f"syncfs: {os.strerror(err)}", str(path))


def sync_tree(root: Path) -> None:
    """Make every file, directory and symlink under ``root`` durable before it is published.

    One ``syncfs(2)`` on the filesystem holding ``root`` replaces an fsync per
    file. syncfs writes back every dirty page and inode of that filesystem and
    waits for it (ext4 and XFS also commit their journal and flush the disk
    cache, as fsync does), so every file of the tree, which lives on that
    filesystem, is on disk when it returns, before the rename(2) that publishes
    the tree. The directories are then fsync'd one by one as before (cheap:
    already clean). It also flushes unrelated dirty data of that filesystem,
    which only costs time. Where syncfs is unavailable (not Linux, no libc
    symbol, ENOSYS/EPERM) every file is fsync'd instead (``fsync_tree``). Both
    ways, errors raise OSError.
    """
    if syncfs(root):
        crashpoint("sync_tree:syncfs")
        fsync_tree(root, files=False)
    else:
        fsync_tree(root)


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` by write+fsync of a temp file, rename, fsync of the dir."""
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def append_line(path: Path, line: str) -> None:
    """Append one line to ``path`` and fsync it (O_APPEND keeps lines whole).

    When the file does not end with a newline (a line torn by a crash), a newline
    is written first so that the torn line cannot swallow this one. The parent
    directory is fsync'd when the file is created.
    """
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        data = (line.rstrip("\n") + "\n").encode()
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(path.parent)


def swap_symlink(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` atomically: new link under a temp name, rename(2), fsync.

    Temp links left by an earlier crash (``.<name>.new.<pid>``) are removed first;
    callers serialise swaps of one link (the deploy lock).
    """
    prefix = f".{link.name}.new."
    for leftover in link.parent.iterdir():
        if leftover.name.startswith(prefix) and leftover.is_symlink():
            leftover.unlink(missing_ok=True)
    tmp = link.with_name(f"{prefix}{os.getpid()}")
    os.symlink(target, tmp)
    crashpoint("swap_symlink:created")
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    crashpoint("swap_symlink:renamed")
    fsync_dir(link.parent)
    crashpoint("swap_symlink:fsynced")
