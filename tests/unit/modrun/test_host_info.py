"""The host_info module through ``tradeops.modrun``: read-only facts and preflight checks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import tradeops
from tests.unit.modrun.conftest import handle
from tradeops.modrun.api import API_VERSION
from tradeops.releases.layout import LAYOUT_DIRS, Layout

from .conftest import closed_url, host_info_params


def host_info(root: Path | str, check_mode: bool = False, **over: Any) -> dict[str, Any]:
    params = host_info_params(Path(root), **over)
    return handle(
        {"api": API_VERSION, "module": "host_info", "params": params, "check_mode": check_mode}
    )


def test_a_complete_layout(layout: Layout) -> None:
    (layout.releases / "r1").mkdir()
    os.symlink("releases/r1", layout.current)
    result = host_info(layout.root, require_layout=True, min_free_bytes=1)
    assert "failed" not in result
    assert result["changed"] is False
    assert result["root"] == str(layout.root)
    assert result["exists"] is True
    assert result["layout_ok"] is True
    assert result["missing_dirs"] == []
    assert result["releases"] == ["r1"]
    assert result["current_release"] == "r1"
    assert result["library_version"] == tradeops.__version__
    assert result["service_manager"] in ("systemd", "supervisord")
    assert result["free_bytes"] > 0
    assert "running" not in result


def test_check_mode_answers_the_same(layout: Layout) -> None:
    # free_bytes moves with whatever else writes to the disk meanwhile (other test workers).
    checked, real = host_info(layout.root, check_mode=True), host_info(layout.root)
    assert checked.pop("free_bytes") > 0
    assert real.pop("free_bytes") > 0
    assert checked == real


def test_an_incomplete_layout_is_reported_without_require_layout(layout: Layout) -> None:
    (layout.state / "snapshots").rmdir()
    result = host_info(layout.root)
    assert "failed" not in result
    assert result["layout_ok"] is False
    assert result["missing_dirs"] == ["state/snapshots"]


def test_require_layout_names_the_missing_dirs(layout: Layout) -> None:
    (layout.state / "snapshots").rmdir()
    (layout.root / "run").rmdir()
    shutil.rmtree(layout.shared / "secrets")
    result = host_info(layout.root, require_layout=True)
    assert result["failed"] is True
    assert result["msg"] == (
        f"tradeops layout incomplete under {layout.root}: "
        "missing shared/secrets, state/snapshots, run"
    )
    assert result["missing_dirs"] == ["shared/secrets", "state/snapshots", "run"]
    assert result["layout_ok"] is False


def test_require_layout_on_a_missing_root(tmp_path: Path) -> None:
    result = host_info(tmp_path / "nowhere", require_layout=True)
    assert result["failed"] is True
    assert result["exists"] is False
    assert set(result["missing_dirs"]) == set(LAYOUT_DIRS)
    assert "does not exist" in result["msg"]
    assert result["free_bytes"] is None


def test_a_missing_root_without_require_layout_is_reported(tmp_path: Path) -> None:
    result = host_info(tmp_path / "nowhere")
    assert "failed" not in result
    assert (result["exists"], result["layout_ok"], result["free_bytes"]) == (False, False, None)


def test_a_missing_root_fails_the_free_space_check(tmp_path: Path) -> None:
    result = host_info(tmp_path / "nowhere", min_free_bytes=1 << 20)
    assert result["failed"] is True
    assert str(tmp_path / "nowhere") in result["msg"]


def test_a_missing_root_is_not_reported_as_0_mib_free(tmp_path: Path) -> None:
    result = host_info(tmp_path / "nowhere", min_free_bytes=1 << 20)
    assert "only 0 MiB free" not in result["msg"]


def test_too_little_free_space_fails_in_mib(layout: Layout) -> None:
    need = 1 << 62
    result = host_info(layout.root, min_free_bytes=need)
    assert result["failed"] is True
    free = result["free_bytes"]
    assert result["msg"] == (
        f"only {free >> 20} MiB free under {layout.root}, {need >> 20} MiB needed"
    )
    assert result["layout_ok"] is True


def test_enough_free_space_passes(layout: Layout) -> None:
    free = shutil.disk_usage(layout.root).free
    result = host_info(layout.root, min_free_bytes=max(free // 4, 1))
    assert "failed" not in result
    assert host_info(layout.root, min_free_bytes=0)["changed"] is False


def test_require_layout_is_checked_before_free_space(layout: Layout) -> None:
    (layout.root / "run").rmdir()
    result = host_info(layout.root, require_layout=True, min_free_bytes=1 << 62)
    assert "layout incomplete" in result["msg"]


def test_a_relative_root_fails() -> None:
    result = host_info("srv/tradeops")
    assert result["failed"] is True
    assert "absolute path" in result["msg"]
    assert "exception" not in result


def test_a_current_that_is_not_a_symlink_fails(layout: Layout) -> None:
    layout.current.mkdir()
    result = host_info(layout.root)
    assert result["failed"] is True
    assert "not a symlink" in result["msg"]


def test_status_url_reports_the_running_release(layout: Layout, status_url: str) -> None:
    result = host_info(layout.root, status_url=status_url)
    assert result["running"] == {
        "release_id": "r9",
        "version": "9.0",
        "pid": 999,
        "config_sha256": "c" * 64,
        "error": None,
    }


def test_a_status_url_that_does_not_answer_is_not_a_failure(layout: Layout) -> None:
    url = closed_url()
    result = host_info(layout.root, status_url=url)
    assert "failed" not in result
    assert result["running"]["release_id"] is None
    assert result["running"]["error"].startswith(url)


def test_config_files_lists_those_whose_content_differs(layout: Layout) -> None:
    import hashlib

    good, stale = b"mode: live\n", b"mode: paper\n"
    config = layout.shared / "config" / "r9"
    config.mkdir(parents=True)
    (config / "a.yml").write_bytes(good)
    (config / "b.yml").write_bytes(stale)
    wanted = [
        {"path": "config/{release_id}/a.yml", "sha256": hashlib.sha256(good).hexdigest()},
        {"path": "config/{release_id}/b.yml", "sha256": hashlib.sha256(good).hexdigest()},
        {"path": "config/{release_id}/c.yml", "sha256": hashlib.sha256(good).hexdigest()},
    ]
    result = host_info(layout.root, release_id="r9", config_files=wanted)
    assert result["config_differs"] == ["config/r9/b.yml", "config/r9/c.yml"]
    assert "config_differs" not in host_info(layout.root)


def test_a_config_path_outside_shared_is_refused(layout: Layout) -> None:
    bad = [{"path": "../etc/passwd", "sha256": "0" * 64}]
    result = host_info(layout.root, release_id="r9", config_files=bad)
    assert result["failed"] is True
    assert "relative to shared/" in result["msg"]
