"""Release config files: parsed safely, written atomically under shared/, idempotent."""

from __future__ import annotations

import grp
import hashlib
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tradeops.releases.config_files import (
    ConfigFile,
    ConfigFileError,
    parse_config_files,
    sync_config_files,
)
from tradeops.releases.layout import LAYOUT_DIRS, Layout

CONTENT = "refapp:\n  symbol: ESZ5\n"


def make_layout(tmp_path: Path) -> Layout:
    root = tmp_path / "root"
    for rel in LAYOUT_DIRS:
        (root / rel).mkdir(parents=True, exist_ok=True)
    return Layout.at(root)


def entry(path: str = "config/{release_id}/refapp.yml", **fields: Any) -> dict[str, Any]:
    return {"path": path, "content": CONTENT, "mode": "0640", "group": None, **fields}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def other_group() -> str | None:
    """A group other than ours that this process may give its files, or None."""
    own = os.getgid()
    root = os.geteuid() == 0
    candidates = [g.gr_gid for g in grp.getgrall()] if root else os.getgroups()
    for gid in candidates:
        if gid != own:
            try:
                return grp.getgrgid(gid).gr_name
            except KeyError:
                continue
    return None


# parse_config_files


def test_parse_expands_the_release_id_everywhere_in_the_path() -> None:
    files = parse_config_files([entry("config/{release_id}/{release_id}.yml")], "r42")
    assert files == [ConfigFile("config/r42/r42.yml", CONTENT, 0o640, None)]
    assert files[0].sha256 == sha(CONTENT)


def test_parse_defaults() -> None:
    (item,) = parse_config_files([{"path": "config/a.yml", "content": ""}], "r1")
    assert item == ConfigFile("config/a.yml", "", 0o640, None)
    (item,) = parse_config_files([{"path": "a", "content": "x", "mode": None, "group": ""}], "r1")
    assert (item.content, item.mode, item.group) == ("x", 0o640, None)


@pytest.mark.parametrize(
    "extra",
    [{}, {"content": "x", "sha256": "a" * 64}, {"sha256": "not-hex"}],
    ids=["neither", "both", "bad-digest"],
)
def test_parse_needs_content_or_a_digest(extra: dict) -> None:
    with pytest.raises(ConfigFileError):
        parse_config_files([{"path": "config/a.yml", **extra}], "r1")


def test_a_digest_entry_only_checks(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    (written,) = parse_config_files([{"path": "config/r1/a.yml", "content": "k: 1\n"}], "r1")
    sync_config_files(layout, [written], check_mode=False)
    good = ConfigFile("config/r1/a.yml", None, expected=written.sha256)
    bad = ConfigFile("config/r1/a.yml", None, expected="0" * 64)
    assert sync_config_files(layout, [good], check_mode=False) == (
        [],
        {"config/r1/a.yml": written.sha256},
    )
    changed, digests = sync_config_files(layout, [bad], check_mode=True)
    assert changed == ["config/r1/a.yml"]
    assert digests == {"config/r1/a.yml": written.sha256}
    with pytest.raises(ConfigFileError, match="no content was given"):
        sync_config_files(layout, [bad], check_mode=False)
    assert (layout.shared / "config/r1/a.yml").read_text() == "k: 1\n"


@pytest.mark.parametrize(("mode", "bits"), [("0600", 0o600), ("644", 0o644), ("0o750", 0o750)])
def test_parse_reads_the_mode_as_octal(mode: str, bits: int) -> None:
    (item,) = parse_config_files([entry(mode=mode, group="trading")], "r1")
    assert (item.mode, item.group) == (bits, "trading")


def test_parse_keeps_the_order_of_the_entries() -> None:
    files = parse_config_files([entry("b.yml"), entry("a.yml"), entry("config/c.yml")], "r1")
    assert [f.path for f in files] == ["b.yml", "a.yml", "config/c.yml"]


def test_parse_of_nothing_is_nothing() -> None:
    assert parse_config_files([], "r1") == []


@pytest.mark.parametrize(
    "path",
    [
        "/x",
        "/etc/passwd",
        "../x",
        "a/../../b",
        "config/../../../etc/cron.d/x",
        "config/{release_id}/..",
        "",
    ],
)
def test_parse_refuses_paths_outside_shared(path: str) -> None:
    with pytest.raises(ConfigFileError, match="must be relative to shared/"):
        parse_config_files([entry(path)], "r1")


def test_parse_refuses_a_path_missing_entirely() -> None:
    with pytest.raises(ConfigFileError, match="must be relative to shared/"):
        parse_config_files([{"content": "x"}], "r1")


@pytest.mark.parametrize("release_id", ["..", "/abs"])
def test_parse_checks_the_path_after_expansion(release_id: str) -> None:
    with pytest.raises(ConfigFileError, match="must be relative"):
        parse_config_files([entry("{release_id}/x.yml")], release_id)


@pytest.mark.parametrize("mode", ["rw-r-----", "0800", "0o9", "u+rw", "64O"])
def test_parse_refuses_a_mode_that_is_not_octal(mode: str) -> None:
    expected = re.escape(f"config/r1/refapp.yml: mode {mode!r} is not octal")
    with pytest.raises(ConfigFileError, match=expected):
        parse_config_files([entry(mode=mode)], "r1")


def test_config_file_error_is_a_value_error() -> None:
    assert issubclass(ConfigFileError, ValueError)


# sync_config_files


def test_sync_writes_files_with_their_mode(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    files = parse_config_files(
        [entry(), entry("secrets/{release_id}/api.key", content="k3y\n", mode="0600")], "r1"
    )
    changed, digests = sync_config_files(layout, files, check_mode=False)
    assert changed == ["config/r1/refapp.yml", "secrets/r1/api.key"]
    assert digests == {"config/r1/refapp.yml": sha(CONTENT), "secrets/r1/api.key": sha("k3y\n")}
    written = layout.shared / "config" / "r1" / "refapp.yml"
    assert written.read_text() == CONTENT
    assert written.stat().st_mode & 0o7777 == 0o640
    key = layout.shared / "secrets" / "r1" / "api.key"
    assert key.read_text() == "k3y\n"
    assert key.stat().st_mode & 0o7777 == 0o600
    # Atomic: no temp file beside the target.
    assert sorted(p.name for p in written.parent.iterdir()) == ["refapp.yml"]


def test_sync_applies_the_mode_despite_the_umask(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    files = parse_config_files([entry(mode="0664")], "r1")
    old_umask = os.umask(0o077)
    try:
        sync_config_files(layout, files, check_mode=False)
    finally:
        os.umask(old_umask)
    assert (layout.shared / "config/r1/refapp.yml").stat().st_mode & 0o7777 == 0o664


def test_a_second_sync_changes_nothing(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    files = parse_config_files([entry()], "r1")
    sync_config_files(layout, files, check_mode=False)
    path = layout.shared / "config/r1/refapp.yml"
    inode, mtime = path.stat().st_ino, path.stat().st_mtime_ns
    changed, digests = sync_config_files(layout, files, check_mode=False)
    assert changed == []
    assert digests == {"config/r1/refapp.yml": sha(CONTENT)}
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (inode, mtime)


def test_changed_content_is_rewritten(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    sync_config_files(layout, parse_config_files([entry()], "r1"), check_mode=False)
    files = parse_config_files([entry(content="x: 2\n")], "r1")
    changed, digests = sync_config_files(layout, files, check_mode=False)
    assert changed == ["config/r1/refapp.yml"]
    assert digests["config/r1/refapp.yml"] == sha("x: 2\n")
    assert (layout.shared / "config/r1/refapp.yml").read_text() == "x: 2\n"


def test_a_file_edited_on_the_host_is_put_back(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    files = parse_config_files([entry()], "r1")
    sync_config_files(layout, files, check_mode=False)
    path = layout.shared / "config/r1/refapp.yml"
    path.write_text("hand edit\n")
    assert sync_config_files(layout, files, check_mode=False)[0] == ["config/r1/refapp.yml"]
    assert path.read_text() == CONTENT


def test_a_changed_mode_alone_triggers_a_rewrite(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    sync_config_files(layout, parse_config_files([entry(mode="0640")], "r1"), check_mode=False)
    path = layout.shared / "config/r1/refapp.yml"
    changed, digests = sync_config_files(
        layout, parse_config_files([entry(mode="0600")], "r1"), check_mode=False
    )
    assert changed == ["config/r1/refapp.yml"]
    assert digests == {"config/r1/refapp.yml": sha(CONTENT)}
    assert path.stat().st_mode & 0o7777 == 0o600
    assert path.read_text() == CONTENT


def test_a_mode_changed_on_the_host_is_put_back(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    files = parse_config_files([entry(mode="0640")], "r1")
    sync_config_files(layout, files, check_mode=False)
    path = layout.shared / "config/r1/refapp.yml"
    path.chmod(0o666)
    assert sync_config_files(layout, files, check_mode=False)[0] == ["config/r1/refapp.yml"]
    assert path.stat().st_mode & 0o7777 == 0o640


def test_check_mode_writes_nothing_but_reports(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    files = parse_config_files([entry()], "r1")
    changed, digests = sync_config_files(layout, files, check_mode=True)
    assert changed == ["config/r1/refapp.yml"]
    assert digests == {"config/r1/refapp.yml": ""}  # what is on disk: nothing yet
    assert not (layout.shared / "config" / "r1").exists()


def test_check_mode_reports_the_digest_on_disk(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    sync_config_files(layout, parse_config_files([entry()], "r1"), check_mode=False)
    path = layout.shared / "config/r1/refapp.yml"
    before = path.read_bytes(), path.stat().st_mode, path.stat().st_mtime_ns
    files = parse_config_files([entry(content="x: 2\n", mode="0600")], "r1")
    changed, digests = sync_config_files(layout, files, check_mode=True)
    assert changed == ["config/r1/refapp.yml"]
    assert digests == {"config/r1/refapp.yml": sha(CONTENT)}  # the old content, live
    assert (path.read_bytes(), path.stat().st_mode, path.stat().st_mtime_ns) == before
    # Unchanged files are not reported in check mode either.
    same = parse_config_files([entry()], "r1")
    assert sync_config_files(layout, same, check_mode=True) == (
        [],
        {"config/r1/refapp.yml": sha(CONTENT)},
    )


def test_an_unknown_group_is_refused(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    files = parse_config_files([entry(group="no-such-group-tradeops")], "r1")
    with pytest.raises(ConfigFileError, match="group 'no-such-group-tradeops' does not exist"):
        sync_config_files(layout, files, check_mode=False)
    with pytest.raises(ConfigFileError, match="does not exist"):
        sync_config_files(layout, files, check_mode=True)
    assert not (layout.shared / "config" / "r1").exists()


def test_an_existing_group_is_applied(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    group = grp.getgrgid(os.getgid()).gr_name
    files = parse_config_files([entry(group=group)], "r1")
    assert sync_config_files(layout, files, check_mode=False)[0] == ["config/r1/refapp.yml"]
    path = layout.shared / "config/r1/refapp.yml"
    assert path.stat().st_gid == os.getgid()
    assert sync_config_files(layout, files, check_mode=False)[0] == []


def test_a_changed_group_alone_triggers_a_rewrite(tmp_path: Path) -> None:
    group = other_group()
    if group is None:
        pytest.skip("this process may not give files to any group but its own")
    layout = make_layout(tmp_path)
    sync_config_files(layout, parse_config_files([entry()], "r1"), check_mode=False)
    path = layout.shared / "config/r1/refapp.yml"
    assert path.stat().st_gid == os.getgid()
    files = parse_config_files([entry(group=group)], "r1")
    assert sync_config_files(layout, files, check_mode=True)[0] == ["config/r1/refapp.yml"]
    assert path.stat().st_gid == os.getgid()  # check mode
    assert sync_config_files(layout, files, check_mode=False)[0] == ["config/r1/refapp.yml"]
    assert path.stat().st_gid == grp.getgrnam(group).gr_gid
    assert path.stat().st_mode & 0o7777 == 0o640
    assert sync_config_files(layout, files, check_mode=False)[0] == []


def test_no_group_keeps_the_group_the_file_has(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    files = parse_config_files([entry()], "r1")
    sync_config_files(layout, files, check_mode=False)
    path = layout.shared / "config/r1/refapp.yml"
    gid = path.stat().st_gid
    assert sync_config_files(layout, files, check_mode=False)[0] == []
    assert path.stat().st_gid == gid


def test_a_failed_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = make_layout(tmp_path)
    sync_config_files(layout, parse_config_files([entry()], "r1"), check_mode=False)
    path = layout.shared / "config/r1/refapp.yml"

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    files = parse_config_files([entry(content="x: 2\n")], "r1")
    with pytest.raises(OSError, match="No space left"):
        sync_config_files(layout, files, check_mode=False)
    monkeypatch.undo()
    assert path.read_text() == CONTENT
    assert sorted(p.name for p in path.parent.iterdir()) == ["refapp.yml"]


@pytest.mark.parametrize("mode", ["-640", "177777"])
def test_parse_refuses_a_mode_out_of_range(mode: str) -> None:
    with pytest.raises(ConfigFileError):
        parse_config_files([entry(mode=mode)], "r1")
