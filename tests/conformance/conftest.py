"""The conformance suite needs QuickFIX: ``make conformance`` installs it.

Without it the suite is skipped on a developer's machine and fails under
CI=true, like the tests that need root or sshd.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

if importlib.util.find_spec("quickfix") is None:
    _WHY = (
        "QuickFIX is not installed in this venv: run `make conformance` (scripts/quickfix-wheel.sh)"
    )
    if os.environ.get("CI") == "true":
        raise pytest.UsageError(_WHY)
    collect_ignore_glob = ["test_*.py"]
    print(f"conformance: SKIPPED, {_WHY}")
