"""Receive a release artifact streamed after the request, into memory, checked.

The action plugin can send the artifact right after the JSON request line on
the same SSH channel: no temporary file on the host, no second transfer
session, and nothing extra for the staging's syncfs to write back. It lands in
an anonymous memory file (memfd); its sha256 is checked against the
controller's before anything reads it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import BinaryIO

from tradeops.releases.fsutil import write_all

CHUNK = 1 << 20


class StreamError(ValueError):
    """The streamed artifact is short or does not match the controller's sha256."""


def _open_sink() -> int:
    """An anonymous file: memfd where the kernel has it, else an unlinked temp file."""
    if hasattr(os, "memfd_create"):
        try:
            return os.memfd_create("tradeops-artifact")
        except OSError:
            pass
    fd, path = tempfile.mkstemp(prefix="tradeops-artifact-")
    os.unlink(path)
    return fd


def receive(source: BinaryIO, size: int, sha256: str) -> str:
    """Copy exactly ``size`` bytes from ``source``; return a path that reads them back.

    The path (``/proc/self/fd/N``) stays valid for the life of this process.
    """
    fd = _open_sink()
    digest = hashlib.sha256()
    left = size
    while left > 0:
        chunk = source.read(min(CHUNK, left))
        if not chunk:
            os.close(fd)
            raise StreamError(f"artifact stream ended {left} bytes short of {size}")
        digest.update(chunk)
        write_all(fd, chunk)
        left -= len(chunk)
    if digest.hexdigest() != sha256:
        os.close(fd)
        raise StreamError(
            f"artifact corrupted in transfer: sha256 {digest.hexdigest()[:12]}, "
            f"the controller sent {sha256[:12]}"
        )
    os.lseek(fd, 0, os.SEEK_SET)
    return f"/proc/self/fd/{fd}"
