"""Small release artifacts for tests: three files and their MANIFEST."""

from __future__ import annotations

import hashlib
import io
import tarfile
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
