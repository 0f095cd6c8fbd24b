"""The controller and the host read a release's MANIFEST by the same rules.

The controller's reader (plugins/module_utils/artifact_manifest.py, standard
library only) and the host's (tradeops.releases.staging / manifest) are two
homes that must remain; each artifact below goes through both.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.collection_files import load
from tradeops.releases.staging import StageError, read_artifact_manifest
from tradeops.testing.artifacts import craft_artifact

controller = load("plugins/module_utils/artifact_manifest.py")


def rebuilt(src: Path, out: Path, rename=None, manifest=None) -> Path:
    """``src`` with members renamed by ``rename`` and the MANIFEST JSON changed by ``manifest``."""
    with tarfile.open(src) as tar_in, tarfile.open(out, "w:gz") as tar_out:
        for member in tar_in:
            if not member.isfile():  # a directory entry: kept, renamed like the files
                member.name = rename(member.name) if rename else member.name
                tar_out.addfile(member)
                continue
            data = tar_in.extractfile(member).read()
            if member.name == "MANIFEST" and manifest is not None:
                data = (json.dumps(manifest(json.loads(data))) + "\n").encode()
            info = tarfile.TarInfo(rename(member.name) if rename else member.name)
            info.size = len(data)
            tar_out.addfile(info, io.BytesIO(data))
    return out


def both(path: Path) -> tuple[object, object]:
    """What each side makes of ``path``: its digest, or the error class name."""
    try:
        host = read_artifact_manifest(path).digest
    except StageError:
        host = "refused"
    try:
        ctrl = controller.read_artifact(path)[0]["digest"]
    except controller.ArtifactError:
        ctrl = "refused"
    return host, ctrl


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    return craft_artifact(tmp_path / "a.tar.gz", "1.0")


def test_a_good_artifact_gives_the_same_digest_on_both_sides(artifact: Path) -> None:
    host, ctrl = both(artifact)
    assert host == ctrl
    assert host != "refused"


def test_dot_slash_member_names_are_the_same_member_on_both_sides(
    artifact: Path, tmp_path: Path
) -> None:
    dotted = rebuilt(artifact, tmp_path / "b.tar.gz", rename=lambda n: "./" + n)
    assert both(dotted) == both(artifact)


@pytest.mark.parametrize(
    "change",
    [
        lambda m: {**m, "digest": "0" * 64},  # a digest that is not the table's
        lambda m: {**m, "files": {**m["files"], "REVISION": "1" * 64}},  # a table changed
        lambda m: {**m, "format": 2},
    ],
    ids=["declared-digest", "table-changed", "format"],
)
def test_a_manifest_the_host_refuses_the_controller_refuses(
    artifact: Path, tmp_path: Path, change
) -> None:
    assert both(rebuilt(artifact, tmp_path / "c.tar.gz", manifest=change)) == ("refused", "refused")
