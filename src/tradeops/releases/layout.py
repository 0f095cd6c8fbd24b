"""The directory layout of a trading host, and a read-only inspection of it.

::

    <root>/                     tradeops_root, e.g. /srv/tradeops
      releases/<release_id>/    immutable; MANIFEST lists the sha256 of every file
      releases/.staging/        <id>.partial while a release is being staged
      current -> releases/<id>  swapped atomically by rename(2)
      shared/{config,secrets,log}
      state/                    agent state, audit log, snapshots
      venv/                     the tradeops library and its Python
      release-log.jsonl
      deploy.lock
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tradeops

# Directory -> mode. Secrets are readable by the service user only. The host role
# creates the same list (roles/host/tasks/layout.yml, which runs before the venv
# exists); tests/unit/releases/test_layout.py fails when the two differ.
LAYOUT_DIRS: dict[str, int] = {
    ".": 0o755,
    "releases": 0o755,
    "releases/.staging": 0o750,
    "shared": 0o750,
    "shared/config": 0o750,
    "shared/secrets": 0o700,
    "shared/log": 0o750,
    "state": 0o750,
    "state/snapshots": 0o750,
    "run": 0o750,
    "supervisor": 0o755,
    "supervisor/conf.d": 0o755,
}
# Owned by root, so that the service user cannot change what runs; the rest by it.
ROOT_OWNED = frozenset({".", "releases", "releases/.staging", "supervisor", "supervisor/conf.d"})


@dataclass(frozen=True)
class Layout:
    """Paths of one host's tradeops tree."""

    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike[str]) -> Layout:
        """Return the layout rooted at ``root`` (which must be absolute)."""
        path = Path(root)
        if not path.is_absolute():
            raise ValueError(f"tradeops_root must be an absolute path, got: {root}")
        return cls(path)

    @property
    def releases(self) -> Path:
        """Directory of complete, verified releases."""
        return self.root / "releases"

    @property
    def staging(self) -> Path:
        """Directory where releases are unpacked before the atomic rename."""
        return self.releases / ".staging"

    @property
    def current(self) -> Path:
        """The symlink that names the active release."""
        return self.root / "current"

    @property
    def shared(self) -> Path:
        """Config, secrets and logs shared by every release."""
        return self.root / "shared"

    @property
    def state(self) -> Path:
        """Agent state, audit log and snapshots."""
        return self.root / "state"

    @property
    def venv(self) -> Path:
        """The virtualenv holding the tradeops library."""
        return self.root / "venv"

    @property
    def release_log(self) -> Path:
        """JSON lines recording release order and status."""
        return self.root / "release-log.jsonl"

    @property
    def deploy_lock(self) -> Path:
        """The per-host deploy lock file."""
        return self.root / "deploy.lock"

    def missing_dirs(self) -> list[str]:
        """Return the layout directories that do not exist, relative to the root."""
        return [rel for rel in LAYOUT_DIRS if not (self.root / rel).is_dir()]

    def current_release(self) -> str | None:
        """Return the release id that ``current`` points to, or None."""
        try:
            target = os.readlink(self.current)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RuntimeError(f"{self.current} exists but is not a symlink: {exc}") from exc
        return Path(target).name


def inspect_host(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Describe the tradeops tree at ``root`` without changing anything."""
    layout = Layout.at(root)
    exists = layout.root.is_dir()
    missing = layout.missing_dirs() if exists else sorted(LAYOUT_DIRS)
    releases: list[str] = []
    if layout.releases.is_dir():
        releases = sorted(
            p.name for p in layout.releases.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
    return {
        "root": str(layout.root),
        "exists": exists,
        "layout_ok": exists and not missing,
        "missing_dirs": missing,
        "current_release": layout.current_release() if exists else None,
        "releases": releases,
        "library_version": tradeops.__version__,
        "python": sys.executable,
        "service_manager": detect_service_manager(),
        "free_bytes": shutil.disk_usage(layout.root).free if exists else None,
    }


def detect_service_manager() -> str:
    """Return ``systemd`` when systemd runs as PID 1, else ``supervisord``."""
    return "systemd" if Path("/run/systemd/system").is_dir() else "supervisord"
