"""The host layout and its read-only inspection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tradeops.releases.layout import LAYOUT_DIRS, ROOT_OWNED, Layout, inspect_host


def make_layout(root: Path) -> None:
    for rel in LAYOUT_DIRS:
        (root / rel).mkdir(parents=True, exist_ok=True)


def test_relative_root_is_refused() -> None:
    with pytest.raises(ValueError, match="absolute path"):
        Layout.at("srv/tradeops")


def test_missing_root_reports_every_directory(tmp_path: Path) -> None:
    info = inspect_host(tmp_path / "absent")
    assert info["exists"] is False
    assert info["layout_ok"] is False
    assert set(info["missing_dirs"]) == set(LAYOUT_DIRS)
    assert info["current_release"] is None


def test_complete_layout_with_current_release(tmp_path: Path) -> None:
    make_layout(tmp_path)
    (tmp_path / "releases" / "r1").mkdir()
    (tmp_path / "releases" / "r2").mkdir()
    os.symlink("releases/r2", tmp_path / "current")
    info = inspect_host(tmp_path)
    assert info["layout_ok"] is True
    assert info["missing_dirs"] == []
    assert info["releases"] == ["r1", "r2"]  # .staging is not a release
    assert info["current_release"] == "r2"


def test_one_missing_directory_is_named(tmp_path: Path) -> None:
    make_layout(tmp_path)
    (tmp_path / "state" / "snapshots").rmdir()
    info = inspect_host(tmp_path)
    assert info["layout_ok"] is False
    assert info["missing_dirs"] == ["state/snapshots"]


def test_current_that_is_not_a_symlink_is_an_error(tmp_path: Path) -> None:
    make_layout(tmp_path)
    (tmp_path / "current").mkdir()
    with pytest.raises(RuntimeError, match="not a symlink"):
        Layout.at(tmp_path).current_release()


REPO = Path(__file__).resolve().parents[3]


def test_the_host_role_creates_exactly_the_librarys_layout() -> None:
    """Two homes that must remain (the role runs before the venv exists): one list."""
    tasks = yaml.safe_load((REPO / "roles/host/tasks/layout.yml").read_text())
    (create,) = [t for t in tasks if t.get("ansible.builtin.file", {}).get("state") == "directory"]
    role = {
        item["path"]: (int(item["mode"], 8), item.get("owner") == "root") for item in create["loop"]
    }
    library = {path: (mode, path in ROOT_OWNED) for path, mode in LAYOUT_DIRS.items()}
    assert role == library
