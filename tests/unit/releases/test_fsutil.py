"""Durable filesystem primitives and the crashpoint test hook."""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tradeops.releases import fsutil
from tradeops.releases.fsutil import (
    CRASH_ENV,
    append_line,
    atomic_write,
    crashpoint,
    crashpoint_count,
    fsync_dir,
    fsync_tree,
    swap_symlink,
    sync_tree,
    syncfs,
)


def test_fsync_dir_and_tree_accept_symlinks_without_following_them(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    (tree / "a.txt").write_text("a")
    (tree / "sub" / "deeper" / "b.txt").write_text("b")
    os.symlink("../../nowhere/log", tree / "dangling")  # like a shared link in .partial
    os.symlink(str(tree / "sub"), tree / "dir-link")
    os.symlink("a.txt", tree / "file-link")
    fsync_tree(tree)
    fsync_dir(tree)
    # Nothing was changed or followed.
    assert os.readlink(tree / "dangling") == "../../nowhere/log"
    assert sorted(p.name for p in tree.iterdir()) == [
        "a.txt",
        "dangling",
        "dir-link",
        "file-link",
        "sub",
    ]


def test_fsync_dir_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError):
        fsync_dir(tmp_path / "f")


def test_atomic_write_replaces_content_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    atomic_write(target, b"one", mode=0o600)
    assert target.read_bytes() == b"one"
    assert (target.stat().st_mode & 0o777) == 0o600
    atomic_write(target, b"two" * 100_000)
    assert target.read_bytes() == b"two" * 100_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_atomic_write_into_missing_dir_fails_cleanly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "missing" / "x", b"data")
    assert list(tmp_path.iterdir()) == []


def test_append_line_creates_and_appends_whole_lines(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    append_line(log, "first")
    append_line(log, "second\n")
    assert log.read_text() == "first\nsecond\n"


def test_append_line_does_not_glue_onto_a_torn_line(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text('{"a":1}\n{"torn":')
    append_line(log, '{"b":2}')
    assert log.read_text().splitlines() == ['{"a":1}', '{"torn":', '{"b":2}']


def test_swap_symlink_replaces_the_link_and_cleans_leftovers(tmp_path: Path) -> None:
    (tmp_path / "releases" / "A").mkdir(parents=True)
    (tmp_path / "releases" / "B").mkdir()
    link = tmp_path / "current"
    swap_symlink(link, "releases/A")
    assert os.readlink(link) == "releases/A"
    # Leftovers of a crashed swap: a temp link of another pid. A regular file
    # that merely shares the prefix is not ours to delete.
    os.symlink("releases/A", tmp_path / ".current.new.999999")
    (tmp_path / ".current.new.notes").write_text("keep me")
    swap_symlink(link, "releases/B")
    assert os.readlink(link) == "releases/B"
    assert link.resolve() == (tmp_path / "releases" / "B").resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".current.new.notes",
        "current",
        "releases",
    ]


def test_swap_symlink_refuses_to_replace_a_directory(tmp_path: Path) -> None:
    (tmp_path / "current").mkdir()
    (tmp_path / "current" / "data").write_text("precious")
    with pytest.raises(OSError, match="directory"):
        swap_symlink(tmp_path / "current", "releases/A")
    assert (tmp_path / "current" / "data").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current"]


def test_crashpoint_is_a_no_op_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CRASH_ENV, raising=False)
    before = crashpoint_count()
    for index in range(1000):
        crashpoint(f"p{index}")
    assert crashpoint_count() == before


@pytest.mark.parametrize("value", ["", "not-a-number"])
def test_crashpoint_ignores_empty_or_invalid_settings(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(CRASH_ENV, value)
    before = crashpoint_count()
    crashpoint("x")
    assert crashpoint_count() == before


def test_crashpoint_zero_counts_without_crashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CRASH_ENV, "0")
    before = crashpoint_count()
    crashpoint("one")
    crashpoint("two")
    assert crashpoint_count() == before + 2
    assert fsutil.crashpoint_labels()[-2:] == ["one", "two"]


CHILD = (
    "from tradeops.releases.fsutil import crashpoint\n"
    "for label in ('a', 'b', 'c'):\n"
    "    print('before', label, flush=True)\n"
    "    crashpoint(label)\n"
    "print('survived', flush=True)\n"
)


def _run_child(setting: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if setting is not None:
        env[CRASH_ENV] = setting
    return subprocess.run(
        [sys.executable, "-c", CHILD],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_crashpoint_kills_the_process_at_the_nth_point() -> None:
    result = _run_child("2")
    assert result.returncode == -signal.SIGKILL
    assert result.stdout.split("\n")[:2] == ["before a", "before b"]
    assert "survived" not in result.stdout
    assert "before c" not in result.stdout
    assert "crashpoint 2 b" in result.stderr


@pytest.mark.parametrize("setting", [None, "4", "0"])
def test_crashpoint_beyond_the_last_point_or_unset_never_kills(setting: str | None) -> None:
    result = _run_child(setting)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("survived\n")


def make_tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "sub" / "b.txt").write_text("b")
    (root / "sub" / "deeper" / "c.txt").write_text("c")
    os.symlink("../../shared/log", root / "log")


class FakeSyncfs:
    """Stands in for libc's syncfs: records the device of each fd, returns ``errno_value``."""

    def __init__(self, errno_value: int = 0) -> None:
        self.errno_value = errno_value
        self.devices: list[int] = []

    def __call__(self, fd: int) -> int:
        self.devices.append(os.fstat(fd).st_dev)
        if self.errno_value:
            ctypes.set_errno(self.errno_value)
            return -1
        return 0


def _labels_of_sync_tree(root: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv(CRASH_ENV, "0")
    before = len(fsutil.crashpoint_labels())
    sync_tree(root)
    return fsutil.crashpoint_labels()[before:]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="syncfs(2) is Linux only")
def test_syncfs_flushes_the_filesystem_and_closes_its_fd(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 4096)
    fds = len(os.listdir("/proc/self/fd"))
    assert syncfs(tmp_path) is True
    assert len(os.listdir("/proc/self/fd")) == fds


def test_sync_tree_uses_one_syncfs_then_fsyncs_the_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path / "tree")
    fake = FakeSyncfs()
    monkeypatch.setattr(fsutil, "_libc_syncfs", lambda: fake)
    labels = _labels_of_sync_tree(tmp_path / "tree", monkeypatch)
    assert fake.devices == [os.stat(tmp_path / "tree").st_dev]
    assert labels == ["sync_tree:syncfs"] + ["fsync_tree:dir"] * 3  # deeper, sub, tree


@pytest.mark.parametrize("reason", ["no symbol", errno.ENOSYS, errno.EPERM])
def test_sync_tree_falls_back_to_fsync_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reason: object
) -> None:
    make_tree(tmp_path / "tree")
    fake = FakeSyncfs(reason if isinstance(reason, int) else 0)
    monkeypatch.setattr(fsutil, "_libc_syncfs", lambda: None if reason == "no symbol" else fake)
    labels = _labels_of_sync_tree(tmp_path / "tree", monkeypatch)
    # Every regular file (not the symlink) and every directory is fsync'd.
    assert labels.count("fsync_tree:file") == 3
    assert labels.count("fsync_tree:dir") == 3
    assert "sync_tree:syncfs" not in labels


@pytest.mark.parametrize("code", [errno.EIO, errno.ENOSPC])
def test_a_failing_syncfs_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    make_tree(tmp_path / "tree")
    monkeypatch.setattr(fsutil, "_libc_syncfs", lambda: FakeSyncfs(code))
    with pytest.raises(OSError, match="syncfs") as caught:
        sync_tree(tmp_path / "tree")
    assert caught.value.errno == code


def test_fsync_tree_can_skip_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path / "tree")
    monkeypatch.setenv(CRASH_ENV, "0")
    before = len(fsutil.crashpoint_labels())
    fsync_tree(tmp_path / "tree", files=False)
    assert fsutil.crashpoint_labels()[before:] == ["fsync_tree:dir"] * 3
