"""Make the collection importable as ``ansible_collections.tradeops.algo`` for plugin tests.

Plugins import their module_utils by the collection's FQCN, as Ansible loads them.
A private tree (``ansible_collections/tradeops/algo`` -> this repo) on ``sys.path``
makes that work without Ansible's collection loader or ``make collection``.
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _collection_root() -> str:
    root = Path(tempfile.mkdtemp(prefix="tradeops-collection-"))
    atexit.register(shutil.rmtree, root, True)
    namespace = root / "ansible_collections" / "tradeops"
    namespace.mkdir(parents=True)
    (namespace / "algo").symlink_to(REPO)
    return str(root)


if not any((Path(p) / "ansible_collections" / "tradeops" / "algo").exists() for p in sys.path):
    sys.path.insert(0, _collection_root())
