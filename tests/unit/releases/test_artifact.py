"""Release artifact builds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tradeops.releases.artifact import ArtifactError, build_artifact
from tradeops.releases.manifest import Manifest, sha256_file, verify_tree


def test_artifact_unpacks_to_a_verified_tree(tmp_path: Path) -> None:
    built = build_artifact("1.2.3", tmp_path / "out")
    assert built.path.name == "refapp-1.2.3.tar.gz"
    assert (tmp_path / "out" / "refapp-1.2.3.tar.gz.sha256").read_text().split()[0] == built.sha256
    assert sha256_file(built.path) == built.sha256
    dest = tmp_path / "unpacked"
    with tarfile.open(built.path) as tar:
        names = tar.getnames()
        members = tar.getmembers()
        tar.extractall(dest, filter="data")
    assert {"MANIFEST", "bin/refapp", "REVISION"} <= set(names)
    assert all(m.uid == 0 and m.mtime == 0 for m in members)
    # The package boundary: the strategy and its client, never the host library.
    top = {n.split("/")[1] for n in names if n.startswith("site/") and n.count("/") >= 2}
    assert top == {"tradeops_client", "tradeops_refapp"}
    assert "site/tradeops_refapp/__main__.py" in names
    # Shipped compiled: one unchecked-hash pyc (flags word 1) per module of the strategy.
    sources = [n for n in names if n.startswith("site/") and n.endswith(".py")]
    tag = sys.implementation.cache_tag
    for source in sources:
        folder, module = source.rsplit("/", 1)
        pyc = dest / folder / "__pycache__" / f"{module[:-3]}.{tag}.pyc"
        assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 1, source
    manifest = Manifest.load(dest)
    assert manifest.version == "1.2.3"
    assert manifest.digest == built.digest
    assert verify_tree(dest, manifest).ok
    assert (dest / "bin" / "refapp").stat().st_mode & 0o111
    assert (dest / "REVISION").read_text().startswith("1.2.3\n")


def test_same_source_same_manifest_digest(tmp_path: Path) -> None:
    one = build_artifact("2.0", tmp_path / "a")
    two = build_artifact("2.0", tmp_path / "b")
    assert one.digest == two.digest


def test_fault_mode_is_baked_into_defaults(tmp_path: Path) -> None:
    built = build_artifact("3.0", tmp_path, fault_mode="runaway")
    with tarfile.open(built.path) as tar:
        member = tar.extractfile("config/defaults.yml")
        assert member is not None
        assert b"refapp_fault_mode: runaway" in member.read()


@pytest.mark.parametrize("version", ["", "-1", "1/2", "a" * 65, "1.0 beta"])
def test_bad_versions_are_refused(tmp_path: Path, version: str) -> None:
    with pytest.raises(ArtifactError, match="invalid version"):
        build_artifact(version, tmp_path)


def test_unknown_fault_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="fault mode must be one of"):
        build_artifact("1.0", tmp_path, fault_mode="moon")


def test_payload_is_shipped_and_verified(tmp_path: Path) -> None:
    payload = tmp_path / "data"
    (payload / "tables").mkdir(parents=True)
    (payload / "tables" / "limits.csv").write_text("ESZ5,100\n")
    built = build_artifact("4.0", tmp_path / "out", payload=payload)
    dest = tmp_path / "unpacked"
    with tarfile.open(built.path) as tar:
        tar.extractall(dest, filter="data")
    manifest = Manifest.load(dest)
    assert "payload/tables/limits.csv" in manifest.files
    assert verify_tree(dest, manifest).ok


def test_payload_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArtifactError, match="payload must be a directory"):
        build_artifact("4.0", tmp_path / "out", payload=tmp_path / "file")


def test_a_built_release_runs_its_own_strategy_and_client(tmp_path: Path) -> None:
    """The launcher's path: the release's site/ first, the host library from the venv."""
    built = build_artifact("1.2.4", tmp_path / "out")
    dest = tmp_path / "release"
    with tarfile.open(built.path) as tar:
        tar.extractall(dest, filter="data")
    probe = (
        "import json, tradeops, tradeops_client, tradeops_refapp.__main__ as m; "
        "print(json.dumps([tradeops.__file__, tradeops_client.__file__, m.__file__]))"
    )
    env = {**os.environ, "PYTHONPATH": str(dest / "site")}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    library, client, strategy = json.loads(done.stdout)
    assert client.startswith(str(dest / "site" / "tradeops_client"))
    assert strategy.startswith(str(dest / "site" / "tradeops_refapp"))
    assert not library.startswith(str(dest)), "a release must not shadow the host library"
    usage = subprocess.run(
        [sys.executable, "-m", "tradeops_refapp", "check-config", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert usage.returncode == 0, usage.stderr
    assert "--config" in usage.stdout
