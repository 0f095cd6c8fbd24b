# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a release artifact on the controller, with the standard library only.

The controller need not have the ``tradeops`` library (the hosts do): the
action plugins use this to read the MANIFEST and the config template of an
artifact in one streaming pass, and to size it for the preflight.
"""

from __future__ import annotations

import hashlib
import json
import tarfile

MANIFEST_NAME = "MANIFEST"
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
                if member.isfile() and (member.name == MANIFEST_NAME or member.name in wanted):
                    handle = tar.extractfile(member)
                    data = handle.read() if handle is not None else b""
                    if member.name == MANIFEST_NAME:
                        manifest = data
                    else:
                        found[member.name] = data
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
    if not isinstance(data, dict) or not isinstance(data.get("digest"), str):
        raise ArtifactError("%s: MANIFEST has no digest" % path)
    if not isinstance(data.get("version"), str):
        raise ArtifactError("%s: MANIFEST has no version" % path)
    return data, found, unpacked
