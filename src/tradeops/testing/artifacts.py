"""Release artifacts for tests and drills: a small one, and a copy with one member changed."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

from tradeops.releases.manifest import MANIFEST_NAME, Manifest


def craft_artifact(path: Path, revision: str) -> Path:
    """Write a tar.gz release whose files name ``revision``; return its path."""
    files = {
        "REVISION": f"{revision}\n".encode(),
        "bin/refapp": b"#!/bin/sh\n",
        "site/pkg/__init__.py": f"VERSION = {revision!r}\n".encode(),
    }
    manifest = Manifest(
        "refapp", revision, {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in [(MANIFEST_NAME, manifest.to_json().encode()), *files.items()]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
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
