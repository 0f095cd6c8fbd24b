"""The version and release id that the running refapp reports."""

from __future__ import annotations

import os
from pathlib import Path

import tradeops

RELEASE_ENV = "TRADEOPS_RELEASE_ID"
REVISION_FILE = "REVISION"


def _read_revision(directory: Path) -> str | None:
    try:
        text = (directory / REVISION_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text.splitlines()[0].strip() if text else None


def release_id(config_dir: str | os.PathLike[str] | None = None) -> str:
    """Return the release id of the running code.

    In order: env ``TRADEOPS_RELEASE_ID``; a ``REVISION`` file in the config's
    directory; a ``REVISION`` file in a directory above this package (the release
    directory it was installed from); else ``"dev"``.
    """
    env = os.environ.get(RELEASE_ENV, "").strip()
    if env:
        return env
    candidates: list[Path] = []
    if config_dir is not None:
        candidates.append(Path(config_dir))
    here = Path(__file__).resolve().parent
    candidates.extend(list(here.parents)[:5])
    for directory in candidates:
        found = _read_revision(directory)
        if found:
            return found
    return "dev"


def version() -> str:
    """Return the library version."""
    return tradeops.__version__
