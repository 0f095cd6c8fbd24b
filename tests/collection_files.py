"""Load a file of the collection (a plugin, a module_utils file) as a module, by its path.

The plugins are not a Python package importable from the repo: tests load the
file itself, as Ansible does.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def load(relpath: str) -> Any:
    """The module in ``REPO / relpath``, executed once per call."""
    spec = importlib.util.spec_from_file_location(relpath.replace("/", "_"), REPO / relpath)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
