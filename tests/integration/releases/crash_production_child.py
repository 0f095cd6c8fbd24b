"""The deploy's host-side steps for one release, as the release role runs them.

``deploy(spec)`` makes, in one process, the three calls the role makes on a
host (roles/release/tasks/phase_stage.yml, phase_gate.yml, phase_cutover.yml):
the stage with the config rendered for this host, the gate's live re-check in
check mode, then the cutover (verify off, prune on, no strategy). The shared
links are the release module's default (plugins/module_utils/specs.py), so
``etc -> config/<release_id>``.

Run as a script (``python crash_production_child.py '<spec as JSON>'``) it is
the child of test_crash_production_path.py: with ``TRADEOPS_CRASH_AT=N`` it
SIGKILLs itself at the N-th crash point; run to the end it prints, as JSON,
the crash points it passed and whether each step changed anything.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from tradeops.releases import fsutil
from tradeops.releases.cutover import run_cutover
from tradeops.releases.service import ReleaseRequest, run_release

REPO = Path(__file__).resolve().parents[3]
CONFIG_PATH = "config/{release_id}/refapp.yml"  # roles/release/defaults/main.yml


def _module_spec_defaults() -> dict[str, Any]:
    """The release module's argument spec, read from the collection's own file."""
    path = REPO / "plugins" / "module_utils" / "specs.py"
    loaded = importlib.util.spec_from_file_location("tradeops_crash_specs", path)
    assert loaded is not None
    assert loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    args: dict[str, Any] = module.RELEASE["argument_spec"]
    return {name: arg.get("default") for name, arg in args.items()}


DEFAULTS = _module_spec_defaults()
SHARED_LINKS: dict[str, str] = dict(DEFAULTS["shared_links"])
KEEP: int = DEFAULTS["keep"]


def rendered_config(release_id: str) -> str:
    """The config the controller renders for this host and release (differs per release)."""
    return f"# rendered for {release_id}\nrelease_id: {release_id}\nvenue: paper\n"


def config_sha256(release_id: str) -> str:
    return hashlib.sha256(rendered_config(release_id).encode()).hexdigest()


class GateRefused(RuntimeError):
    """The gate's live re-check found the host differs from the controller's release."""


def deploy(spec: dict[str, Any]) -> dict[str, Any]:
    """Stage, gate and cut over ``spec["release_id"]`` on the host at ``spec["root"]``."""
    if not spec.get("syncfs", True):
        # A host without syncfs(2): staging falls back to an fsync per file.
        fsutil.syncfs = lambda path: False
    root, rid = spec["root"], spec["release_id"]
    digest, version = spec["manifest_digest"], spec["version"]
    staged = run_release(
        ReleaseRequest(
            root=root,
            state="staged",
            release_id=rid,
            artifact=spec["artifact"],
            shared_links=SHARED_LINKS,
            manifest_digest=digest,
            version=version,
            config_files=[{"path": CONFIG_PATH, "content": rendered_config(rid), "mode": "0640"}],
        )
    )
    gate = run_release(
        ReleaseRequest(
            root=root,
            state="staged",
            release_id=rid,
            shared_links=SHARED_LINKS,
            manifest_digest=digest,
            version=version,
            config_files=[
                {"path": path, "sha256": sha}
                for path, sha in staged.result["config_expected_sha256"].items()
            ],
            verify=True,
        ),
        check_mode=True,
    )
    if gate.changed or gate.result["manifest_digest"] != digest:
        raise GateRefused(f"gate: {gate.result}")
    cutover = run_cutover(
        ReleaseRequest(
            root=root,
            state="active",
            release_id=rid,
            manifest_digest=digest,
            shared_links=SHARED_LINKS,
            verify=False,  # the gate re-hashed every file
            prune=True,
            keep=KEEP,
        ),
        None,
    )
    return {
        "count": fsutil.crashpoint_count(),
        "labels": fsutil.crashpoint_labels(),
        "stage_changed": staged.changed,
        "cutover_changed": cutover.changed,
        "removed": cutover.result.get("removed", []),
    }


if __name__ == "__main__":
    print(json.dumps(deploy(json.loads(sys.argv[1]))))
