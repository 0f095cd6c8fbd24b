"""Config files of a release, rendered on the controller, written under ``shared/``.

Each release has its own config directory (``shared/config/<release_id>/``,
linked into the release as ``etc``), so that code and config switch together
and a rollback gets the old config back. The content arrives rendered; this
module writes it atomically and reports its sha256, which the deploy gate
compares with the controller's.
"""

from __future__ import annotations

import grp
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tradeops.releases.fsutil import atomic_write
from tradeops.releases.layout import Layout


class ConfigFileError(ValueError):
    """A config file entry is unsafe or cannot be written."""


@dataclass(frozen=True)
class ConfigFile:
    """One file to write: where (under ``shared/``), what, and who may read it.

    Without ``content`` the entry only checks: ``expected`` is the sha256 the
    file must have (the deploy gate passes the digests the stage wrote, so
    that the controller renders each config once).
    """

    path: str
    content: str | None
    mode: int = 0o640
    group: str | None = None
    expected: str | None = None

    @property
    def sha256(self) -> str:
        """sha256 of the content (or the expected digest), as the gate compares it."""
        if self.content is None:
            return str(self.expected)
        return hashlib.sha256(self.content.encode("utf-8")).hexdigest()


def parse_config_files(entries: list[dict[str, Any]], release_id: str) -> list[ConfigFile]:
    """Turn module entries into ConfigFiles, expanding ``{release_id}`` in paths."""
    files = []
    for entry in entries:
        raw = str(entry.get("path") or "")
        rel = raw.replace("{release_id}", release_id)
        parts = PurePosixPath(rel).parts
        if not rel or rel.startswith("/") or ".." in parts:
            raise ConfigFileError(f"config file path must be relative to shared/: {raw!r}")
        mode = entry.get("mode") or "0640"
        try:
            mode_bits = int(str(mode), 8)
        except ValueError as exc:
            raise ConfigFileError(f"config file {rel}: mode {mode!r} is not octal") from exc
        if not 0 <= mode_bits <= 0o7777:
            raise ConfigFileError(f"config file {rel}: mode {mode!r} is out of range")
        group = entry.get("group") or None
        content, expected = entry.get("content"), entry.get("sha256")
        if (content is None) == (expected is None):
            raise ConfigFileError(f"config file {rel}: give either content or sha256")
        if expected is not None and not re.fullmatch(r"[0-9a-f]{64}", str(expected)):
            raise ConfigFileError(f"config file {rel}: sha256 must be 64 hex digits")
        text = None if content is None else str(content)
        files.append(ConfigFile(rel, text, mode_bits, group, expected))
    return files


def _sha256_of(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _gid(group: str | None) -> int:
    if group is None:
        return -1
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError as exc:
        raise ConfigFileError(f"group {group!r} does not exist on this host") from exc


def _needs_write(path: Path, item: ConfigFile, gid: int) -> bool:
    if _sha256_of(path) != item.sha256:
        return True
    if item.content is None:
        return False  # a check of the content only
    st = path.stat()
    return (st.st_mode & 0o7777) != item.mode or (gid != -1 and st.st_gid != gid)


def config_differs(layout: Layout, files: list[ConfigFile]) -> list[str]:
    """The paths (under shared/) whose content on disk is not the sha256 wanted."""
    return [item.path for item in files if _sha256_of(layout.shared / item.path) != item.sha256]


def sync_config_files(
    layout: Layout, files: list[ConfigFile], check_mode: bool
) -> tuple[list[str], dict[str, str]]:
    """Write every file that differs; return (paths changed, path -> sha256 on disk).

    The digests are of the files as they are on disk after the call (before it,
    in check mode: the deploy gate reads them live in check mode).
    """
    changed: list[str] = []
    digests: dict[str, str] = {}
    for item in files:
        path = layout.shared / item.path
        gid = _gid(item.group)
        if _needs_write(path, item, gid):
            changed.append(item.path)
            if item.content is None and not check_mode:
                raise ConfigFileError(
                    f"shared/{item.path} has sha256 {(_sha256_of(path) or 'none')[:12]}, "
                    f"expected {item.sha256[:12]}, and no content was given to write"
                )
            if not check_mode and item.content is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(path, item.content.encode("utf-8"), mode=item.mode)
                os.chown(path, -1, gid)
                os.chmod(path, item.mode)
        digests[item.path] = item.sha256 if not check_mode else (_sha256_of(path) or "")
    return changed, digests
