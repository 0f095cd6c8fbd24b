"""The collection builds, and ansible-doc lists its modules by FQCN."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

from tests.integration.ansible_run import BIN, REPO, ansible_env

MODULES = (
    "tradeops.algo.cutover",
    "tradeops.algo.deploy_audit",
    "tradeops.algo.deploy_lock",
    "tradeops.algo.host_info",
    "tradeops.algo.killswitch",
    "tradeops.algo.release",
    "tradeops.algo.release_plan",
    "tradeops.algo.strategy",
)


def test_galaxy_build_produces_a_clean_tarball(tmp_path: Path) -> None:
    subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), "."],
        cwd=REPO,
        env=ansible_env(),
        check=True,
        capture_output=True,
    )
    (tarball,) = tmp_path.glob("tradeops-algo-*.tar.gz")
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    assert {"MANIFEST.json", "meta/runtime.yml", "plugins/modules/release.py"} <= names
    assert "roles/host/meta/argument_specs.yml" in names
    unwanted = (".venv", ".collections", ".fleet", ".demo", ".audit", "build/")
    assert not any(n.startswith(unwanted) for n in names)


def test_ansible_doc_lists_the_modules() -> None:
    out = subprocess.run(
        [str(BIN / "ansible-doc"), "-l", "tradeops.algo"],
        cwd=REPO,
        env=ansible_env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    listed = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert set(MODULES) <= listed
