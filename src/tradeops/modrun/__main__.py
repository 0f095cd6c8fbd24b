"""``python -m tradeops.modrun``: run one module request from stdin, answer on stdout.

Input: one line ``{"api": N, "module": name, "params": {...}, "check_mode":
bool, "diff": bool}`` (the versioned host API, see ``api``), with params
already validated against the module's argument spec by the action plugin on
the controller. With ``"artifact_stream": {"bytes": n,
"sha256": h}`` the artifact's n bytes follow the line (see ``stream``) and
become ``params["artifact"]``. Output: the module's result as one JSON
object. An unexpected exception is answered as a failed result with its
traceback, never as a bare crash.
"""

from __future__ import annotations

import json
import sys
from typing import Any, BinaryIO

from tradeops.modrun.api import HANDLERS, handle, host_library

__all__ = ["HANDLERS", "handle", "main", "read_request"]


def _refused(msg: str) -> dict[str, Any]:
    return {"failed": True, "msg": msg, "host_library": host_library()}


def read_request(source: BinaryIO) -> dict[str, Any]:
    """Parse the request line; receive the artifact that follows it, if announced."""
    try:
        request = json.loads(source.readline())
    except ValueError as exc:
        return _refused(f"tradeops.modrun: bad request: {exc}")
    if not isinstance(request, dict):
        return _refused("tradeops.modrun: the request must be a JSON object")
    announced = request.pop("artifact_stream", None)
    if isinstance(announced, dict) and isinstance(request.get("params"), dict):
        from tradeops.modrun import stream  # only a stage pays for its imports

        try:
            size, sha256 = int(announced["bytes"]), str(announced["sha256"])
            request["params"]["artifact"] = stream.receive(source, size, sha256)
        except (KeyError, ValueError, OSError) as exc:
            return _refused(f"tradeops.modrun: {exc}")
    return request


def main() -> int:
    """Read the request, write the result."""
    request = read_request(sys.stdin.buffer)
    result: dict[str, Any] = request if request.get("failed") else handle(request)
    sys.stdout.write(json.dumps(result, default=str))
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
