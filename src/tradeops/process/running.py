"""Read the release that the running strategy process reports (its ``/status``).

The deploy verifies the version from the process itself, never from the
``current`` symlink: a process that did not restart still reports the old one.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

POLL_INTERVAL_S = 0.1
GAVE_UP_EVERY = 5  # polls between two questions to the service manager


@dataclass(frozen=True)
class Running:
    """What the process answered, or why it did not."""

    release_id: str | None
    version: str | None
    pid: int | None
    error: str | None = None
    config_sha256: str | None = None  # the config the process loaded (None: not reported)

    def as_dict(self) -> dict[str, Any]:
        """The module's ``running`` return value."""
        return {
            "release_id": self.release_id,
            "version": self.version,
            "pid": self.pid,
            "config_sha256": self.config_sha256,
            "error": self.error,
        }


def read_running(url: str, timeout_s: float = 2.0) -> Running:
    """GET ``url`` once and return the release it reports (``error`` set on failure)."""
    import urllib.error  # here: only callers that read a status URL pay for the import
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            body = response.read(1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Running(None, None, None, f"{url}: {reason}")
    try:
        data = json.loads(body)
    except ValueError as exc:
        return Running(None, None, None, f"{url}: not JSON: {exc}")
    if not isinstance(data, dict):
        return Running(None, None, None, f"{url}: not a JSON object")
    pid = data.get("pid")
    config = data.get("config_sha256")
    return Running(
        release_id=str(data["release_id"]) if data.get("release_id") is not None else None,
        version=str(data["version"]) if data.get("version") is not None else None,
        pid=pid if isinstance(pid, int) else None,
        config_sha256=config if isinstance(config, str) else None,
    )


def wait_for_release(
    url: str,
    release_id: str,
    timeout_s: float,
    *,
    not_pid: int | None = None,
    interval_s: float = POLL_INTERVAL_S,
    gave_up: Callable[[], str | None] | None = None,
) -> tuple[bool, Running]:
    """Poll ``url`` until it reports ``release_id`` (from a pid other than ``not_pid``).

    Bounded in both time and count. Returns ``(matched, last answer)``. When
    ``gave_up`` (asked every ``GAVE_UP_EVERY`` polls) returns a reason, such as
    the service manager no longer running the process, the wait ends early.
    """
    deadline = time.monotonic() + max(timeout_s, 0.0)
    attempts = max(1, math.ceil(max(timeout_s, 0.0) / interval_s) + 1)
    last = Running(None, None, None, f"{url}: not read")
    for attempt in range(attempts):
        left = deadline - time.monotonic()
        last = read_running(url, timeout_s=max(min(left, 2.0), 0.2))
        fresh = not_pid is None or last.pid != not_pid
        if last.release_id == release_id and fresh:
            return True, last
        if gave_up is not None and attempt % GAVE_UP_EVERY == GAVE_UP_EVERY - 1 and gave_up():
            return False, last
        if attempt == attempts - 1 or time.monotonic() + interval_s > deadline:
            break
        time.sleep(interval_s)
    return False, last
