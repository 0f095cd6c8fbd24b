"""The MANIFEST of a release: the sha256 of every file, the version and build info.

The manifest digest is the sha256 of the canonical JSON of the file table only,
so two builds of the same content have the same digest whatever their build
time. The deploy gate compares it across hosts.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_NAME = "MANIFEST"
FORMAT = 1
_CHUNK = 1 << 20


class ManifestError(ValueError):
    """A manifest is malformed, or a tree does not match it."""


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of the file at ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_files(root: Path, links: frozenset[str] = frozenset()) -> list[str]:
    """Return every regular file under ``root`` as sorted POSIX relative paths.

    Symlinks and special files are refused: a release holds plain files only.
    The exception is ``links``: relative paths that may be symlinks (the shared
    links staging adds); such a symlink is skipped, neither listed nor followed.
    """
    found: list[str] = []
    pending = [""]  # directories to list, relative to root ("" is root itself)
    while pending:
        rel_dir = pending.pop()
        try:
            pending.extend(_list_dir(root, rel_dir, links, found))
        except OSError as exc:
            raise ManifestError(f"cannot list {rel_dir or '.'}: {exc.strerror}") from exc
    return sorted(found)


def _list_dir(root: Path, rel_dir: str, links: frozenset[str], found: list[str]) -> list[str]:
    """Add the files of ``root/rel_dir`` to ``found``; return its subdirectories."""
    subdirs: list[str] = []
    with os.scandir(os.path.join(root, rel_dir)) as entries:
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if entry.is_symlink():
                if rel not in links:
                    raise ManifestError(f"release trees hold no symlinks: {rel}")
            elif entry.is_dir(follow_symlinks=False):
                subdirs.append(rel)
            elif entry.is_file(follow_symlinks=False):
                found.append(rel)
            else:
                raise ManifestError(f"not a regular file: {rel}")
    return subdirs


@dataclass(frozen=True)
class Manifest:
    """What a release contains."""

    name: str
    version: str
    files: dict[str, str]
    build: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """sha256 of the canonical file table: equal content, equal digest."""
        canonical = json.dumps(self.files, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_json(self) -> str:
        """Serialise as the MANIFEST file."""
        data = {
            "format": FORMAT,
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "build": self.build,
            "files": dict(sorted(self.files.items())),
        }
        return json.dumps(data, indent=1, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse a MANIFEST, checking its format and its recorded digest."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"MANIFEST is not JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ManifestError(f"MANIFEST format must be {FORMAT}")
        files = data.get("files")
        if not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and len(v) == 64 for k, v in files.items()
        ):
            raise ManifestError("MANIFEST files must map paths to sha256 hex digests")
        for path in files:
            if path.startswith("/") or ".." in Path(path).parts or path == MANIFEST_NAME:
                raise ManifestError(f"MANIFEST lists an unsafe path: {path}")
        if not isinstance(data.get("name"), str) or not isinstance(data.get("version"), str):
            raise ManifestError("MANIFEST must name the release and its version")
        build = data.get("build") or {}
        if not isinstance(build, dict):
            raise ManifestError("MANIFEST build info must be a mapping")
        manifest = cls(data["name"], data["version"], files, build)
        if data.get("digest") != manifest.digest:
            raise ManifestError("MANIFEST digest does not match its file table")
        return manifest

    @classmethod
    def load(cls, release_dir: Path) -> Manifest:
        """Read ``release_dir/MANIFEST``."""
        try:
            return cls.from_json((release_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ManifestError(f"no {MANIFEST_NAME} in {release_dir}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(f"cannot read {release_dir / MANIFEST_NAME}: {exc}") from exc


@dataclass(frozen=True)
class Verification:
    """Differences between a tree and its manifest; empty lists mean it matches."""

    missing: list[str]
    extra: list[str]
    mismatched: list[str]

    @property
    def ok(self) -> bool:
        """True when the tree is exactly what the manifest lists."""
        return not (self.missing or self.extra or self.mismatched)

    def describe(self) -> str:
        """One line for an operator."""
        parts = []
        for label, items in (
            ("missing", self.missing),
            ("extra", self.extra),
            ("sha256 mismatch", self.mismatched),
        ):
            if items:
                shown = ", ".join(items[:5]) + (
                    f" (+{len(items) - 5} more)" if len(items) > 5 else ""
                )
                parts.append(f"{label}: {shown}")
        return "; ".join(parts) or "verified"


def verify_tree(
    root: Path,
    manifest: Manifest,
    ignore: frozenset[str] = frozenset(),
    *,
    contents: bool = True,
) -> Verification:
    """Compare every file under ``root`` with ``manifest`` (MANIFEST itself excluded).

    ``ignore`` names the symlinks that staging adds (shared paths): they are
    skipped. Anything else at those paths (a file, a directory) is compared as usual.
    With ``contents=False`` only the set of files is compared (missing and extra
    files, symlinks and special files are still found); nothing is hashed.
    """
    present = set(tree_files(root, links=ignore)) - {MANIFEST_NAME}
    listed = set(manifest.files)
    mismatched = []
    if contents:
        mismatched = [
            p for p in sorted(present & listed) if sha256_file(root / p) != manifest.files[p]
        ]
    return Verification(sorted(listed - present), sorted(present - listed), mismatched)


def verify_hashes(manifest: Manifest, hashes: dict[str, str]) -> Verification:
    """Compare sha256 digests computed elsewhere (``path -> hex``) with ``manifest``.

    Staging hashes each file while writing it; this is the same comparison as
    ``verify_tree`` without reading the files back. A ``MANIFEST`` key is ignored.
    """
    present = set(hashes) - {MANIFEST_NAME}
    listed = set(manifest.files)
    mismatched = [p for p in sorted(present & listed) if hashes[p] != manifest.files[p]]
    return Verification(sorted(listed - present), sorted(present - listed), mismatched)


def build_manifest(root: Path, name: str, version: str, build: dict[str, Any]) -> Manifest:
    """Hash every file under ``root`` into a manifest."""
    files = {rel: sha256_file(root / rel) for rel in tree_files(root) if rel != MANIFEST_NAME}
    return Manifest(name, version, files, build)
