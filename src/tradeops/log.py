"""Structured JSON-lines logging shared by every long-running component.

Every line carries ``ts`` (UTC, RFC 3339 with microseconds), ``component``,
``host`` and ``event``, plus any keyword fields, so that the logs of the
simulator, the strategy and the agent can be merged and read back in order.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from datetime import UTC, datetime
from typing import IO, Any


def utc_now_iso() -> str:
    """Return the current UTC time as RFC 3339 with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class EventLog:
    """Write one JSON object per line for each event.

    Thread-safe; flushes after every line so that a crash loses nothing
    already logged.
    """

    def __init__(
        self,
        component: str,
        stream: IO[str] | None = None,
        host: str | None = None,
        **static: Any,
    ) -> None:
        self.component = component
        self.host = host or os.environ.get("TRADEOPS_HOST") or socket.gethostname()
        self._stream = stream if stream is not None else sys.stderr
        self._static = static
        self._lock = threading.Lock()

    def event(self, event: str, **fields: Any) -> dict[str, Any]:
        """Log ``event`` with ``fields`` and return the record written."""
        record: dict[str, Any] = {
            "ts": utc_now_iso(),
            "component": self.component,
            "host": self.host,
            "event": event,
        }
        record.update(self._static)
        record.update(fields)
        line = json.dumps(record, default=str, separators=(",", ":"))
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()
        return record

    def bind(self, **static: Any) -> EventLog:
        """Return a logger that adds ``static`` fields to every record."""
        child = EventLog(self.component, self._stream, self.host, **{**self._static, **static})
        child._lock = self._lock
        return child


def open_log(component: str, path: str | None) -> EventLog:
    """Return an EventLog that appends to ``path``, or writes to stderr when None."""
    if path is None:
        return EventLog(component)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    stream = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives as long as the process
    return EventLog(component, stream)
