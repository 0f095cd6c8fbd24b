"""Release artifacts for tests and drills: a small one, and a copy with one member changed."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

from tradeops.releases.manifest import MANIFEST_NAME, Manifest


def write_artifact(path: Path, name: str, version: str, files: dict[str, bytes]) -> Manifest:
    """Write ``files`` as a release tar.gz with its MANIFEST (directories, and modes as built)."""
    manifest = Manifest(
        name, version, {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for folder in sorted({str(Path(rel).parent) for rel in files} - {"."}):
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for rel, data in [(MANIFEST_NAME, manifest.to_json().encode()), *sorted(files.items())]:
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            info.mode = 0o755 if rel.startswith("bin/") else 0o644
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return manifest


def craft_artifact(path: Path, revision: str) -> Path:
    """Write a tar.gz release whose files name ``revision``; return its path."""
    files = {
        "REVISION": f"{revision}\n".encode(),
        "bin/refapp": b"#!/bin/sh\n",
        "site/pkg/__init__.py": f"VERSION = {revision!r}\n".encode(),
    }
    write_artifact(path, "refapp", revision, files)
    return path


def rewrite_member(artifact: Path, out: Path, name: str, change: Callable[[bytes], bytes]) -> Path:
    """Write ``out``: ``artifact`` with member ``name`` replaced by ``change(its bytes)``.

    Everything else, the MANIFEST included, is copied as it is: a tampered build.
    """
    found = False
    with tarfile.open(artifact) as src, tarfile.open(out, "w:gz") as dst:
        for member in src:
            data = src.extractfile(member) if member.isfile() else None
            if member.name == name and data is not None:
                body = change(data.read())
                member.size = len(body)
                data = io.BytesIO(body)
                found = True
            dst.addfile(member, data)
    if not found:
        raise ValueError(f"{artifact} has no member {name}")
    return out
