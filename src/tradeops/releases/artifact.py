"""Build a release artifact: one tar.gz holding the strategy and its MANIFEST.

Layout inside the archive (no top-level directory; staging unpacks it into
``releases/.staging/<id>.partial``)::

    MANIFEST                the sha256 of every other file, version, build info
    REVISION                version and source commit
    bin/refapp              launcher: the host venv's Python with this release's code first
    site/tradeops_refapp/   the strategy's code, as built
    site/tradeops_client/   the strategy client it was built with (reads the trading state)
    config/refapp.yml.j2    config template rendered per host at deploy
    config/defaults.yml     release defaults (e.g. a fault mode for drills)
    payload/...             optional data files shipped with the release (models, tables)

The archive is reproducible: entries sorted, owner root, fixed modes, and
mtimes set to SOURCE_DATE_EPOCH (default 0), gzip header without a timestamp.
"""

from __future__ import annotations

import compileall
import gzip
import importlib
import io
import os
import py_compile
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import tradeops
from tradeops.log import utc_now_iso
from tradeops.releases.manifest import MANIFEST_NAME, build_manifest, sha256_file

VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
FAULT_MODES = ("none", "runaway", "crash", "hang", "slow", "fat_finger", "reject_storm")
# What a release ships: the strategy and the strategy client, never the host library.
# Imported when a build runs: building is a controller's job, and a trading host's
# venv (where `tradeops release` runs too) has no strategy.
SHIPPED = ("tradeops_refapp", "tradeops_client")


def _shipped_packages() -> list[Path]:
    try:
        modules = [importlib.import_module(name) for name in SHIPPED]
    except ImportError as exc:
        raise ArtifactError(
            f"cannot build a release here: {exc} (the reference strategy is in the "
            "repository's src/, not in the tradeops wheel)"
        ) from exc
    return [Path(str(module.__file__)).resolve().parent for module in modules]


LAUNCHER = """#!/bin/sh
# Run this release's strategy: the host venv's Python and libraries, this
# release's strategy and strategy client first on the path (never a copy of the
# host library). Arguments go to `python -m tradeops_refapp run`.
set -eu
release=$(cd "$(dirname "$0")/.." && pwd -P)
venv=${TRADEOPS_VENV:-$(cd "$release/../.." && pwd -P)/venv}
export PYTHONPATH="$release/site${PYTHONPATH:+:$PYTHONPATH}"
export TRADEOPS_RELEASE_DIR="$release"
# The running process reports the release it was started from, not the symlink.
export TRADEOPS_RELEASE_ID="$(basename "$release")"
exec "$venv/bin/python" -m tradeops_refapp run "$@"
"""


class ArtifactError(ValueError):
    """The artifact cannot be built as asked."""


@dataclass(frozen=True)
class BuiltArtifact:
    """What ``build_artifact`` produced."""

    path: Path
    sha256: str
    version: str
    digest: str
    files: int
    size: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "version": self.version,
            "manifest_digest": self.digest,
            "files": self.files,
            "size_bytes": self.size,
        }


def validate_version(version: str) -> str:
    """Return ``version`` or raise with the rule it breaks."""
    if not VERSION_RE.match(version):
        raise ArtifactError(
            f"invalid version {version!r}: use letters, digits and . _ + - "
            "(at most 64, starting with a letter or digit)"
        )
    return version


def _git_commit(source: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out + ("-dirty" if dirty else "")


def _copy_package(dest: Path, packages: list[Path]) -> None:
    for package in packages:
        shutil.copytree(
            package,
            dest / "site" / package.name,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"),
        )
    # The release directory is read-only to the strategy, so Python could not cache
    # bytecode there: every start would compile the whole package again. Ship it
    # compiled, as unchecked-hash pycs (the MANIFEST already guards every byte, and
    # the archive's normalised mtimes would defeat timestamp checks). A host whose
    # Python differs from the builder's ignores them and compiles in memory.
    compiled = compileall.compile_dir(
        dest / "site",
        ddir="site",  # not the build's temporary path: same source, same bytes
        quiet=1,
        workers=1,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not compiled:
        raise ArtifactError(f"the strategy's code in {dest / 'site'} does not compile")


def _stage_tree(
    tree: Path, version: str, fault_mode: str, commit: str | None, payload: Path | None
) -> None:
    packages = _shipped_packages()
    _copy_package(tree, packages)
    if payload is not None:
        if not payload.is_dir():
            raise ArtifactError(f"payload must be a directory: {payload}")
        shutil.copytree(payload, tree / "payload", symlinks=False)
    (tree / "bin").mkdir()
    (tree / "bin" / "refapp").write_text(LAUNCHER)
    (tree / "config").mkdir()
    template = packages[0] / "templates" / "refapp.yml.j2"
    if template.is_file():
        shutil.copy2(template, tree / "config" / "refapp.yml.j2")
    defaults = {"release_version": version, "refapp_fault_mode": fault_mode}
    (tree / "config" / "defaults.yml").write_text(yaml.safe_dump(defaults, sort_keys=True))
    (tree / "REVISION").write_text(f"{version}\n{commit or 'unknown'}\n")


def _tar_filter(epoch: int, executables: set[str]) -> Any:
    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = epoch
        if info.isdir() or info.name in executables:
            info.mode = 0o755
        else:
            info.mode = 0o644
        return info

    return normalise


def _write_tar(tree: Path, out: Path, epoch: int) -> None:
    executables = {"bin/refapp"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*"))
        for rel in entries:
            tar.add(
                tree / rel, arcname=rel, recursive=False, filter=_tar_filter(epoch, executables)
            )
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(buf.getvalue())
        gz.flush()
    os.replace(tmp, out)


def build_artifact(
    version: str,
    output_dir: Path,
    *,
    name: str = "refapp",
    fault_mode: str = "none",
    payload: Path | None = None,
) -> BuiltArtifact:
    """Build ``<output_dir>/<name>-<version>.tar.gz`` and its ``.sha256`` file."""
    validate_version(version)
    if fault_mode not in FAULT_MODES:
        raise ArtifactError(f"fault mode must be one of {', '.join(FAULT_MODES)}, got {fault_mode}")
    output_dir.mkdir(parents=True, exist_ok=True)
    commit = _git_commit(_shipped_packages()[0])
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    with tempfile.TemporaryDirectory(prefix="tradeops-build-") as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        _stage_tree(tree, version, fault_mode, commit, payload)
        build_info = {
            "built_at": utc_now_iso(),
            "builder_host": socket.gethostname(),
            "python": sys.version.split()[0],
            "tradeops": tradeops.__version__,
            "tradeops_client": importlib.import_module("tradeops_client").CLIENT_VERSION,
            "source_commit": commit,
            "fault_mode": fault_mode,
        }
        manifest = build_manifest(tree, name, version, build_info)
        (tree / MANIFEST_NAME).write_text(manifest.to_json())
        out = output_dir / f"{name}-{version}.tar.gz"
        _write_tar(tree, out, epoch)
    digest = sha256_file(out)
    (output_dir / f"{out.name}.sha256").write_text(f"{digest}  {out.name}\n")
    return BuiltArtifact(
        out, digest, version, manifest.digest, len(manifest.files), out.stat().st_size
    )
