# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a release artifact on the controller, with the standard library only.

The controller need not have the ``tradeops`` library (the hosts do): the
action plugins use this to read the MANIFEST and the config template of an
artifact in one streaming pass, and to size it for the preflight.

It reads a MANIFEST by the host's rules (``tradeops.releases.manifest`` and
``staging._member_path``): member names with ``.`` components are the same
member, the format must be 1, and the digest is recomputed from the file table,
never trusted. tests/unit/plugins/test_artifact_manifest.py checks both sides
against the same artifacts.
"""

from __future__ import annotations

import hashlib
import json
import tarfile

MANIFEST_NAME = "MANIFEST"
MANIFEST_FORMAT = 1
CHUNK = 1 << 20


class ArtifactError(ValueError):
    """The artifact cannot be read or has no valid MANIFEST."""


def sha256_of(path):
    """Return the hex sha256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def member_path(name):
    """A member's path relative to the release: no ``.`` or empty components."""
    return "/".join(part for part in name.split("/") if part not in ("", "."))


def table_digest(files):
    """sha256 of the canonical JSON of a MANIFEST's file table (its digest)."""
    canonical = json.dumps(files, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def read_artifact(path, members=(), full=False):
    """Return ``(manifest dict, {member: bytes}, unpacked bytes)`` from one streaming pass.

    Stops once the MANIFEST and every member in ``members`` are read, unless
    ``full`` (then the unpacked size counts every file).
    """
    wanted = set(members)
    found = {}
    manifest = None
    unpacked = 0
    try:
        with tarfile.open(path, "r|gz") as tar:
            for member in tar:
                unpacked += member.size if member.isfile() else 0
                name = member_path(member.name)
                if member.isfile() and (name == MANIFEST_NAME or name in wanted):
                    handle = tar.extractfile(member)
                    data = handle.read() if handle is not None else b""
                    if name == MANIFEST_NAME:
                        manifest = data
                    else:
                        found[name] = data
                if not full and manifest is not None and wanted <= set(found):
                    break
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArtifactError("%s: cannot read the artifact: %s" % (path, exc)) from exc
    if manifest is None:
        raise ArtifactError("%s: no MANIFEST in the artifact" % path)
    try:
        data = json.loads(manifest.decode("utf-8"))
    except ValueError as exc:
        raise ArtifactError("%s: MANIFEST is not JSON: %s" % (path, exc)) from exc
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise ArtifactError("%s: MANIFEST format must be %d" % (path, MANIFEST_FORMAT))
    if not isinstance(data.get("digest"), str):
        raise ArtifactError("%s: MANIFEST has no digest" % path)
    if not isinstance(data.get("version"), str):
        raise ArtifactError("%s: MANIFEST has no version" % path)
    files = data.get("files")
    if not isinstance(files, dict) or table_digest(files) != data["digest"]:
        raise ArtifactError("%s: MANIFEST digest does not match its file table" % path)
    return data, found, unpacked
