"""The release module through ``tradeops.modrun``: stage, activate, prune, config files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.modrun.conftest import handle
from tradeops.modrun.api import API_VERSION
from tradeops.releases.artifact import BuiltArtifact
from tradeops.releases.layout import Layout

from .conftest import modrun_answer, release_params

CONFIG = "x: 1\n"
CONFIG_SHA = hashlib.sha256(CONFIG.encode()).hexdigest()


def config_files(content: str = CONFIG, mode: str = "0640") -> list[dict[str, Any]]:
    return [
        {"path": "config/{release_id}/refapp.yml", "content": content, "mode": mode, "group": None}
    ]


def release(
    root: Path,
    state: str,
    release_id: str,
    *,
    check_mode: bool = False,
    diff: bool = True,
    **over: Any,
) -> dict[str, Any]:
    params = release_params(root, state, release_id, **over)
    return handle(
        {
            "api": API_VERSION,
            "module": "release",
            "params": params,
            "check_mode": check_mode,
            "diff": diff,
        }
    )


def test_stage_with_config_files(layout: Layout, artifacts: dict[str, BuiltArtifact]) -> None:
    built = artifacts["1.0"]
    result = release(
        layout.root, "staged", "r1", artifact=str(built.path), config_files=config_files()
    )
    assert "failed" not in result, result
    assert result["changed"] is True
    assert result["action"] == "create"
    assert (result["release_id"], result["version"]) == ("r1", "1.0")
    assert result["manifest_digest"] == built.digest
    assert result["current"] is None
    assert result["config_sha256"] == {"config/r1/refapp.yml": CONFIG_SHA}
    assert result["config_expected_sha256"] == result["config_sha256"]
    assert result["config_changed"] == ["config/r1/refapp.yml"]
    config = layout.shared / "config" / "r1" / "refapp.yml"
    assert config.read_text() == CONFIG
    assert config.stat().st_mode & 0o7777 == 0o640
    # The release sees its own config through its etc link.
    assert (layout.releases / "r1" / "etc" / "refapp.yml").read_text() == CONFIG
    # The diff names the file and its digest, never its content.
    assert {"before": "", "after": f"shared/config/r1/refapp.yml sha256 {CONFIG_SHA}\n"} in (
        result["diff"]
    )
    assert CONFIG not in json.dumps(result["diff"])


def test_stage_twice_is_idempotent(layout: Layout, artifacts: dict[str, BuiltArtifact]) -> None:
    args: dict[str, Any] = {"artifact": str(artifacts["1.0"].path), "config_files": config_files()}
    release(layout.root, "staged", "r1", **args)
    again = release(layout.root, "staged", "r1", **args)
    assert again["changed"] is False
    assert again["action"] == "none"
    assert again["config_changed"] == []
    assert "diff" not in again


def test_stage_in_check_mode_writes_nothing(
    layout: Layout, artifacts: dict[str, BuiltArtifact]
) -> None:
    result = release(
        layout.root,
        "staged",
        "r1",
        check_mode=True,
        artifact=str(artifacts["1.0"].path),
        config_files=config_files(),
    )
    assert result["changed"] is True
    assert result["action"] == "create"
    assert result["config_changed"] == ["config/r1/refapp.yml"]
    assert result["config_sha256"] == {"config/r1/refapp.yml": ""}
    assert result["config_expected_sha256"] == {"config/r1/refapp.yml": CONFIG_SHA}
    assert not (layout.releases / "r1").exists()
    assert not (layout.shared / "config" / "r1").exists()


def test_a_config_change_alone_is_a_change(
    layout: Layout, artifacts: dict[str, BuiltArtifact]
) -> None:
    artifact = str(artifacts["1.0"].path)
    release(layout.root, "staged", "r1", artifact=artifact, config_files=config_files())
    result = release(
        layout.root, "staged", "r1", artifact=artifact, config_files=config_files("x: 2\n")
    )
    assert result["changed"] is True
    assert result["action"] == "none"  # the release itself is already staged
    assert result["config_changed"] == ["config/r1/refapp.yml"]
    assert result["config_sha256"] == result["config_expected_sha256"]
    assert (layout.shared / "config" / "r1" / "refapp.yml").read_text() == "x: 2\n"


def test_stage_then_activate_with_prune(
    layout: Layout, artifacts: dict[str, BuiltArtifact]
) -> None:
    results = {}
    for rid, version in (("r1", "1.0"), ("r2", "1.1"), ("r3", "1.2")):
        args: dict[str, Any] = {
            "artifact": str(artifacts[version].path),
            "config_files": config_files(),
        }
        staged = release(layout.root, "staged", rid, **args)
        assert staged["action"] == "create", staged
        results[rid] = release(layout.root, "active", rid, prune=True, keep=1, **args)
    first, last = results["r1"], results["r3"]
    assert (first["action"], first["previous"], first["current"]) == ("activate", None, "r1")
    assert first["removed"] == []
    assert last["changed"] is True
    assert (last["action"], last["previous"], last["current"]) == ("activate", "r2", "r3")
    assert last["version"] == "1.2"
    assert last["removed"] == ["r1"]
    assert last["kept"] == {"r2": "rollback target", "r3": "active"}
    assert last["config_sha256"] == {"config/r3/refapp.yml": CONFIG_SHA}
    assert last["config_expected_sha256"] == last["config_sha256"]
    assert last["config_changed"] == []  # written when staged
    assert layout.current_release() == "r3"
    assert sorted(p.name for p in layout.releases.iterdir() if p.name[0] != ".") == ["r2", "r3"]
    assert any(d.get("after") == f"{layout.current} -> releases/r3\n" for d in last["diff"])
    # Activating again changes nothing.
    again = release(
        layout.root,
        "active",
        "r3",
        prune=True,
        keep=1,
        artifact=str(artifacts["1.2"].path),
        config_files=config_files(),
    )
    assert again["changed"] is False
    assert again["action"] == "none"
    assert again["removed"] == []


def test_active_in_check_mode_plans_stage_and_activate(
    layout: Layout, artifacts: dict[str, BuiltArtifact]
) -> None:
    result = release(
        layout.root,
        "active",
        "r1",
        check_mode=True,
        artifact=str(artifacts["1.0"].path),
        config_files=config_files(),
    )
    assert result["changed"] is True
    assert result["action"] == "stage+activate"
    assert result["diff"]["after"] == f"{layout.current} -> releases/r1\n"
    assert layout.current_release() is None
    assert not (layout.releases / "r1").exists()


def test_diff_is_left_out_unless_asked(layout: Layout, artifacts: dict[str, BuiltArtifact]) -> None:
    result = release(layout.root, "staged", "r1", diff=False, artifact=str(artifacts["1.0"].path))
    assert result["changed"] is True
    assert "diff" not in result
    assert "config_sha256" not in result  # no config_files given


def test_src_points_to_the_action_plugin(layout: Layout) -> None:
    result = release(layout.root, "staged", "r1", src="/controller/refapp-1.0.tar.gz")
    assert result["failed"] is True
    assert "tradeops.algo.release action plugin" in result["msg"]
    assert not (layout.releases / "r1").exists()


def test_staging_without_an_artifact_fails(layout: Layout) -> None:
    result = release(layout.root, "staged", "r1")
    assert result == {
        "failed": True,
        "msg": "staging r1 needs the artifact (artifact or src)",
        "release_id": "r1",
    }


@pytest.mark.parametrize("path", ["/etc/cron.d/x", "../outside.yml", "config/../../x"])
def test_an_unsafe_config_path_fails_before_anything_is_written(
    layout: Layout, artifacts: dict[str, BuiltArtifact], path: str
) -> None:
    files = [{"path": path, "content": CONFIG, "mode": "0640", "group": None}]
    result = release(
        layout.root, "staged", "r1", artifact=str(artifacts["1.0"].path), config_files=files
    )
    assert result["failed"] is True
    assert "must be relative to shared/" in result["msg"]
    assert "exception" not in result


def test_an_unknown_config_group_fails(layout: Layout, artifacts: dict[str, BuiltArtifact]) -> None:
    files = [{"path": "config/{release_id}/a.yml", "content": "a", "mode": "0640", "group": "nx-g"}]
    result = release(
        layout.root, "staged", "r1", artifact=str(artifacts["1.0"].path), config_files=files
    )
    assert result["failed"] is True
    assert "group 'nx-g' does not exist" in result["msg"]


def test_a_bad_release_id_fails(layout: Layout, artifacts: dict[str, BuiltArtifact]) -> None:
    result = release(layout.root, "staged", "../r1", artifact=str(artifacts["1.0"].path))
    assert result["failed"] is True
    assert result["release_id"] == "../r1"
    assert "exception" not in result


def test_a_root_that_is_not_bootstrapped_fails(tmp_path: Path) -> None:
    result = release(tmp_path, "pruned", "r1")
    assert result["failed"] is True
    assert "bootstrap the host with tradeops.algo.host" in result["msg"]


def test_process_stage_with_config_files(
    layout: Layout, artifacts: dict[str, BuiltArtifact]
) -> None:
    params = release_params(
        layout.root,
        "staged",
        "r1",
        artifact=str(artifacts["1.0"].path),
        config_files=config_files(),
    )
    answer = modrun_answer(
        {"api": API_VERSION, "module": "release", "params": params, "diff": True}
    )
    assert answer["changed"] is True
    assert answer["config_sha256"] == answer["config_expected_sha256"]
    assert answer["config_sha256"] == {"config/r1/refapp.yml": CONFIG_SHA}
    assert (layout.releases / "r1" / "MANIFEST").is_file()


def gate_check(root: Path, built: BuiltArtifact, **over: Any) -> dict[str, Any]:
    """The deploy gate's live re-check: check mode, the controller's digest, no artifact."""
    return release(
        root,
        "staged",
        "r1",
        check_mode=True,
        manifest_digest=built.digest,
        version=built.version,
        **over,
    )


def test_the_gate_recheck_passes_an_intact_release(
    layout: Layout, artifacts: dict[str, BuiltArtifact]
) -> None:
    built = artifacts["1.0"]
    assert "failed" not in release(layout.root, "staged", "r1", artifact=str(built.path))
    result = gate_check(layout.root, built, verify=True)
    assert "failed" not in result, result
    assert (result["action"], result["changed"]) == ("none", False)
    assert (result["release_id"], result["manifest_digest"]) == ("r1", built.digest)


def test_the_gate_recheck_rehashes_every_file(
    layout: Layout, artifacts: dict[str, BuiltArtifact]
) -> None:
    """A file changed after staging, MANIFEST untouched, fails the gate's re-check."""
    built = artifacts["1.0"]
    assert "failed" not in release(layout.root, "staged", "r1", artifact=str(built.path))
    revision = layout.releases / "r1" / "REVISION"
    revision.chmod(0o644)
    revision.write_text("someone else's code\n")
    result = gate_check(layout.root, built, verify=True)
    assert result.get("failed") is True, result
    assert "existing release r1 fails verification" in result["msg"]
    assert "REVISION" in result["msg"]
    # Without verify only the MANIFEST digest is compared, which still matches.
    assert "failed" not in gate_check(layout.root, built, verify=False)


def test_the_gate_recheck_of_a_host_that_never_staged_would_create(
    layout: Layout, artifacts: dict[str, BuiltArtifact]
) -> None:
    result = gate_check(layout.root, artifacts["1.0"], verify=True)
    assert "failed" not in result, result
    assert (result["action"], result["changed"]) == ("create", True)
    assert not (layout.releases / "r1").exists()


def test_an_artifact_other_than_the_planned_one_is_refused_before_staging(
    layout: Layout, artifacts: dict[str, BuiltArtifact]
) -> None:
    """The artifact changed between the plan and the stage: nothing staged or logged."""
    planned, other = artifacts["1.0"], artifacts["1.1"]
    result = release(
        layout.root, "staged", "r1", artifact=str(other.path), manifest_digest=planned.digest
    )
    assert result.get("failed") is True, result
    assert "the artifact changed after the plan; nothing staged" in result["msg"]
    assert not (layout.releases / "r1").exists()
    assert not layout.release_log.exists() or "r1" not in layout.release_log.read_text()
    # The right artifact then stages under that id.
    again = release(
        layout.root, "staged", "r1", artifact=str(planned.path), manifest_digest=planned.digest
    )
    assert "failed" not in again, again
    assert again["manifest_digest"] == planned.digest
