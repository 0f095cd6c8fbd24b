"""Helpers shared by sub-commands for human and ``--json`` output."""

from __future__ import annotations

import json
import sys
from typing import Any


def emit(data: Any, as_json: bool, human: str | None = None) -> None:
    """Print ``data`` as JSON when ``as_json``, else the human text (or the JSON)."""
    if as_json or human is None:
        json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(human.rstrip("\n") + "\n")


def fail(message: str, code: int = 1) -> int:
    """Print an error for the operator on stderr and return ``code``."""
    sys.stderr.write(f"tradeops: error: {message}\n")
    return code
