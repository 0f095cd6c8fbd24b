"""``python -m tradeops.modrun``: run one module request from stdin, answer on stdout.

Input: one line ``{"module": name, "params": {...}, "check_mode": bool, "diff":
bool}``, with params already validated against the module's argument spec by
the action plugin on the controller. With ``"artifact_stream": {"bytes": n,
"sha256": h}`` the artifact's n bytes follow the line (see ``stream``) and
become ``params["artifact"]``. Output: the module's result as one JSON
object. An unexpected exception is answered as a failed result with its
traceback, never as a bare crash.
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from typing import Any, BinaryIO

# Imported on demand: a call pays only for its own module's imports.
HANDLERS = frozenset({"cutover", "deploy_lock", "host_info", "release", "strategy"})


def handle(request: dict[str, Any]) -> dict[str, Any]:
    """Run the module named in ``request``; return its result."""
    name = request.get("module")
    if not isinstance(name, str) or name not in HANDLERS:
        return {"failed": True, "msg": f"tradeops.modrun has no module {name!r}"}
    handler = importlib.import_module(f"tradeops.modrun.{name}").run
    params = request.get("params")
    if not isinstance(params, dict):
        return {"failed": True, "msg": "tradeops.modrun: params must be a mapping"}
    try:
        return handler(params, bool(request.get("check_mode")), bool(request.get("diff")))
    except Exception as exc:  # a module must answer, not crash
        return {
            "failed": True,
            "msg": f"{name}: unexpected {type(exc).__name__}: {exc}",
            "exception": traceback.format_exc(),
        }


def read_request(source: BinaryIO) -> dict[str, Any]:
    """Parse the request line; receive the artifact that follows it, if announced."""
    try:
        request = json.loads(source.readline())
    except ValueError as exc:
        return {"failed": True, "msg": f"tradeops.modrun: bad request: {exc}"}
    if not isinstance(request, dict):
        return {"failed": True, "msg": "tradeops.modrun: the request must be a JSON object"}
    announced = request.pop("artifact_stream", None)
    if isinstance(announced, dict) and isinstance(request.get("params"), dict):
        from tradeops.modrun import stream  # only a stage pays for its imports

        try:
            size, sha256 = int(announced["bytes"]), str(announced["sha256"])
            request["params"]["artifact"] = stream.receive(source, size, sha256)
        except (KeyError, ValueError, OSError) as exc:
            return {"failed": True, "msg": f"tradeops.modrun: {exc}"}
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
