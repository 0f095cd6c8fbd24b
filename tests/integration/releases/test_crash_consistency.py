"""Crash consistency of stage + activate: SIGKILL at every crash point, then check and re-run.

A host has release A active. A child process (``crash_child.py``) stages and
activates release B and is killed by SIGKILL at the N-th crash point
(``TRADEOPS_CRASH_AT=N``, see ``tradeops.releases.fsutil.crashpoint``), for every
N from 1 to the number of crash points a full run passes. After each kill:
``current`` resolves to a complete, verified release (A or B); no directory in
``releases/`` is incomplete; the log never runs ahead of the disk. Then an
uninterrupted re-run converges to B active with exactly the log of a clean run.

SIGKILL models a process crash (the page cache survives), not a power cut.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

import tradeops
from tradeops.releases.activation import activate
from tradeops.releases.fsutil import CRASH_ENV
from tradeops.releases.layout import LAYOUT_DIRS, Layout
from tradeops.releases.manifest import Manifest, verify_tree
from tradeops.releases.releaselog import ReleaseLog
from tradeops.releases.staging import DEFAULT_SHARED_LINKS, resolve_links, stage
from tradeops.testing.artifacts import write_artifact

CHILD = Path(__file__).with_name("crash_child.py")
LINKS = frozenset(DEFAULT_SHARED_LINKS)
MIN_CRASH_POINTS = 50
CLEAN_LOG = [
    ("A", "staged"),
    ("A", "active"),
    ("B", "staged"),
    ("A", "previous"),
    ("B", "active"),
]

pytestmark = pytest.mark.slow


SHARED_FILES = 4  # files every revision has alike: B writes its own copy all the same


def craft_artifact(path: Path, revision: str, nfiles: int) -> tuple[Path, str]:
    """A small artifact: ``nfiles`` modules of its own and a few common ones, plus its MANIFEST."""
    files = {"REVISION": f"{revision}\n".encode(), "bin/refapp": b"#!/bin/sh\nexit 0\n"}
    for index in range(nfiles):
        files[f"site/pkg{index % 3}/mod{index}.py"] = f"REV = {revision!r}; N = {index}\n".encode()
    for index in range(SHARED_FILES):
        files[f"site/common/lib{index}.py"] = f"N = {index}\n".encode()
    manifest = write_artifact(path, "refapp", revision, files)
    return path, manifest.digest


class Scenario:
    """A template host with A active, and the artifact of B."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.template = base / "template" / "root"
        for rel in LAYOUT_DIRS:
            (self.template / rel).mkdir(parents=True, exist_ok=True)
        artifact_a, digest_a = craft_artifact(base / "A.tar.gz", "A", 4)
        self.artifact_b, digest_b = craft_artifact(base / "B.tar.gz", "B", 16)
        self.digests = {"A": digest_a, "B": digest_b}
        template = Layout.at(self.template)
        stage(template, artifact_a, "A")
        activate(template, "A")

    def fresh_host(self, name: str) -> Layout:
        root = self.base / "runs" / name / "root"
        shutil.rmtree(root.parent, ignore_errors=True)
        shutil.copytree(self.template, root, symlinks=True)
        return Layout.at(root)

    def run_child(self, layout: Layout, crash_at: str | None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
        if crash_at is not None:
            env[CRASH_ENV] = crash_at
        # The child imports the same tradeops as this test.
        src = str(Path(tradeops.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
        return subprocess.run(
            [sys.executable, str(CHILD), str(layout.root), str(self.artifact_b), "B"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return Scenario(tmp_path_factory.mktemp("crash"))


@pytest.fixture(scope="module")
def clean_run(scenario: Scenario) -> dict[str, Any]:
    """One uninterrupted child run that counts the crash points it passes."""
    layout = scenario.fresh_host("count")
    result = scenario.run_child(layout, "0")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    assert_converged(layout, scenario.digests, "clean run")
    return data


def assert_release_complete(layout: Layout, rid: str, digests: dict[str, str], where: str) -> None:
    release = layout.releases / rid
    assert rid in digests, f"{where}: unexpected directory releases/{rid}"
    manifest = Manifest.load(release)
    assert manifest.digest == digests[rid], f"{where}: releases/{rid} has the wrong MANIFEST"
    result = verify_tree(release, manifest, ignore=LINKS)
    assert result.ok, f"{where}: releases/{rid} is incomplete: {result.describe()}"
    for name, sub in resolve_links(DEFAULT_SHARED_LINKS, rid).items():
        assert (release / name).resolve() == (layout.shared / sub).resolve(), (
            f"{where}: releases/{rid}/{name} is not linked to shared/{sub}"
        )


def assert_consistent(layout: Layout, digests: dict[str, str], where: str) -> None:
    """What must hold at any moment, even right after a SIGKILL."""
    current = layout.current_release()
    assert current in ("A", "B"), f"{where}: current -> {current}"
    assert layout.current.resolve() == (layout.releases / current).resolve(), where
    present = sorted(p.name for p in layout.releases.iterdir() if not p.name.startswith("."))
    assert current in present, f"{where}: current -> missing release {current}"
    for rid in present:
        assert_release_complete(layout, rid, digests, where)
    view = ReleaseLog(layout.release_log).releases()
    for rid in view:
        assert rid in present, f"{where}: the log knows {rid} but releases/{rid} is missing"
    active = [rid for rid, rec in view.items() if rec.status == "active"]
    assert len(active) <= 1, f"{where}: several active releases in the log: {active}"
    if active == ["B"]:
        assert current == "B", f"{where}: the log says B is active before current was swapped"


def assert_converged(layout: Layout, digests: dict[str, str], where: str) -> None:
    """B active, A the rollback target, the log exactly that of a clean run, no leftovers."""
    assert_consistent(layout, digests, where)
    assert os.readlink(layout.current) == "releases/B", where
    log = ReleaseLog(layout.release_log)
    statuses = [(e["release_id"], e["status"]) for e in log.entries()]
    assert statuses == CLEAN_LOG, f"{where}: log {statuses}"
    assert log.rollback_target("B") == "A", where
    assert sorted(p.name for p in layout.releases.iterdir()) == [".staging", "A", "B"], where
    assert list(layout.staging.iterdir()) == [], f"{where}: leftovers in releases/.staging"
    leftovers = [p.name for p in layout.root.iterdir() if p.name.startswith(".current")]
    assert leftovers == [], f"{where}: leftover temp links {leftovers}"


def rerun(layout: Layout, artifact: Path) -> None:
    stage(layout, artifact, "B")
    activate(layout, "B")


def test_run_without_the_hook_never_crashes(scenario: Scenario) -> None:
    for setting in (None, ""):
        layout = scenario.fresh_host(f"unset-{setting}")
        result = scenario.run_child(layout, setting)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"count": 0, "labels": []}
        assert_converged(layout, scenario.digests, f"hook {setting!r}")


def test_crash_point_beyond_the_last_one_never_crashes(
    scenario: Scenario, clean_run: dict[str, Any]
) -> None:
    layout = scenario.fresh_host("beyond")
    result = scenario.run_child(layout, str(clean_run["count"] + 1))
    assert result.returncode == 0, result.stderr
    assert_converged(layout, scenario.digests, "beyond the last crash point")


def test_crash_points_cover_every_step(scenario: Scenario, clean_run: dict[str, Any]) -> None:
    labels = clean_run["labels"]
    assert clean_run["count"] >= MIN_CRASH_POINTS
    assert len(labels) == clean_run["count"]
    # The new tree is made durable one way: one syncfs, or (without syncfs) an
    # fsync per file; either way every directory is fsync'd, all before the rename.
    assert ("sync_tree:syncfs" in labels) != ("fsync_tree:file" in labels), labels
    durable = {"sync_tree:syncfs", "fsync_tree:file", "fsync_tree:dir"}
    last_durable = max(i for i, label in enumerate(labels) if label in durable)
    assert last_durable < labels.index("stage:before-rename")
    # One crash point per member, one more per file (created, still empty): B
    # writes every file, even those A has alike (it shares no inode with A).
    with tarfile.open(scenario.artifact_b) as tar:
        members = tar.getmembers()
    assert labels.count("stage:extract") == len(members)
    assert "stage:file-linked" not in labels
    assert labels.count("stage:file-created") == sum(m.isfile() for m in members)
    last_extract = max(i for i, label in enumerate(labels) if label == "stage:extract")
    assert last_extract < labels.index("stage:before-verify") < labels.index("stage:verified")
    assert set(labels) >= {
        "stage:partial-created",
        "stage:file-created",
        "stage:extract",
        "stage:before-verify",
        "stage:verified",
        "stage:link",
        "fsync_tree:dir",
        "stage:before-rename",
        "stage:renamed",
        "stage:releases-fsynced",
        "stage:staging-fsynced",
        "stage:logged",
        "activate:planned",
        "swap_symlink:created",
        "swap_symlink:renamed",
        "swap_symlink:fsynced",
        "activate:logged-previous",
        "activate:logged-active",
    }


def test_sigkill_at_every_crash_point(
    scenario: Scenario, clean_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CRASH_ENV, raising=False)
    count = clean_run["count"]
    labels = clean_run["labels"]
    seen_current = set()
    for crash_at in range(1, count + 1):
        label = labels[crash_at - 1]
        where = f"SIGKILL at crash point {crash_at} ({label})"
        layout = scenario.fresh_host("kill")
        result = scenario.run_child(layout, str(crash_at))
        assert result.returncode == -signal.SIGKILL, f"{where}: rc {result.returncode}"
        assert f"crashpoint {crash_at} {label}\n" in result.stderr, f"{where}: {result.stderr}"
        assert_consistent(layout, scenario.digests, where)
        seen_current.add(layout.current_release())
        rerun(layout, scenario.artifact_b)
        assert_converged(layout, scenario.digests, f"{where}, then a re-run")
        rerun(layout, scenario.artifact_b)  # and once more: nothing changes
        assert_converged(layout, scenario.digests, f"{where}, then two re-runs")
    # The kills landed on both sides of the swap.
    assert seen_current == {"A", "B"}


def test_sigkill_at_a_leftover_removal(scenario: Scenario, clean_run: dict[str, Any]) -> None:
    """A crash while staging removes the .partial an earlier crash left."""
    layout = scenario.fresh_host("leftover")
    first = clean_run["labels"].index("stage:verified") + 1
    assert scenario.run_child(layout, str(first)).returncode == -signal.SIGKILL
    assert (layout.staging / "B.partial").is_dir()
    result = scenario.run_child(layout, "1")  # dies right after removing the leftover
    assert result.returncode == -signal.SIGKILL
    assert "crashpoint 1 stage:leftover-removed" in result.stderr
    assert_consistent(layout, scenario.digests, "after the second crash")
    rerun(layout, scenario.artifact_b)
    assert_converged(layout, scenario.digests, "after two crashes and a re-run")
