"""Skip a test whose requirement is missing, except under ``CI=true``, where it fails.

CI must not pass by skipping: there every requirement (root, sshd, PostgreSQL,
supervisord) is expected to be present.
"""

from __future__ import annotations

import os

import pytest


def on_ci() -> bool:
    """Whether this run is CI's (``CI`` set to true, 1 or yes)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unavailable(reason: str) -> None:
    """Skip with ``reason``; under CI, fail with it instead."""
    if on_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)
