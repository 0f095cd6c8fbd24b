"""The host audit log: one fsync'd JSON line per change, who, why and when.

Lock and unlock, trading-state resets, and (later) every agent transition are
appended to ``<tradeops_root>/state/audit.jsonl`` with the same fields.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from tradeops.log import utc_now_iso
from tradeops.releases.fsutil import append_line


def append_audit(path: Path, component: str, event: str, **fields: Any) -> dict[str, Any]:
    """Append one audit record (ts, component, host, event, fields) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "ts": utc_now_iso(),
        "component": component,
        "host": socket.gethostname(),
        "event": event,
        **fields,
    }
    append_line(path, json.dumps(record, sort_keys=True, default=str))
    return record
