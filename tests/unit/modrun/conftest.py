"""Shared helpers of the modrun tests: a host layout, module parameters, a subprocess runner."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tradeops.modrun import api
from tradeops.releases.artifact import BuiltArtifact, build_artifact
from tradeops.releases.layout import LAYOUT_DIRS, Layout
from tradeops.releases.staging import DEFAULT_SHARED_LINKS

REPO = Path(__file__).resolve().parents[3]


def make_layout(root: Path) -> Layout:
    """A bootstrapped host root: every directory of the layout."""
    for rel in LAYOUT_DIRS:
        (root / rel).mkdir(parents=True, exist_ok=True)
    return Layout.at(root)


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    """A complete, empty host layout."""
    return make_layout(tmp_path / "root")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BuiltArtifact]:
    """Artifacts of versions 1.0, 1.1 and 1.2, built once per module."""
    out = tmp_path_factory.mktemp("artifacts")
    return {version: build_artifact(version, out / version) for version in ("1.0", "1.1", "1.2")}


def release_params(root: Path, state: str, release_id: str, **over: Any) -> dict[str, Any]:
    """The release module's params as the action plugin sends them (validated, defaults in)."""
    params: dict[str, Any] = {
        "root": str(root),
        "release_id": release_id,
        "state": state,
        "artifact": None,
        "src": None,
        "config_files": None,
        "prune": False,
        "shared_links": dict(DEFAULT_SHARED_LINKS),
        "keep": 5,
        "reason": None,
        "verify": True,
        "manifest_digest": None,
        "version": None,
    }
    params.update(over)
    return params


def lock_params(
    root: Path, state: str = "locked", run_id: str = "run-1", **over: Any
) -> dict[str, Any]:
    """The deploy_lock module's params, with its defaults."""
    params: dict[str, Any] = {
        "root": str(root),
        "state": state,
        "run_id": run_id,
        "owner": "alice",
        "release_id": "r1",
        "controller_host": socket.gethostname(),
        "controller_pid": os.getpid(),
        "ttl": 3600,
        "force": False,
        "reason": None,
    }
    params.update(over)
    return params


def host_info_params(root: Path, **over: Any) -> dict[str, Any]:
    """The host_info module's params, with its defaults."""
    params: dict[str, Any] = {
        "root": str(root),
        "require_layout": False,
        "min_free_bytes": 0,
        "status_url": None,
        "verify_current": False,
        "release_id": None,
        "config_files": None,
    }
    params.update(over)
    return params


def handle(request: dict[str, Any]) -> dict[str, Any]:
    """``api.handle``, checking that the answer names the library; the result without it."""
    result = api.handle(request)
    assert result.pop("host_library") == api.host_library(), result
    return result


def run_modrun(stdin: str | bytes, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """``python -m tradeops.modrun`` in a real process, as the action plugin runs it."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return subprocess.run(
        [sys.executable, "-m", "tradeops.modrun"],
        input=data,
        capture_output=True,
        cwd=REPO,
        env=env,
        timeout=timeout,
        check=False,
    )


def modrun_answer(request: Any) -> dict[str, Any]:
    """Send ``request`` as JSON; return the one JSON answer, checking the exit and framing."""
    proc = run_modrun(json.dumps(request))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 1, proc.stdout
    answer = json.loads(lines[0])
    assert isinstance(answer, dict)
    assert answer.pop("host_library") == api.host_library(), answer
    return answer


@pytest.fixture
def status_url() -> Iterator[str]:
    """A /status endpoint reporting release r9 from pid 999, with config digest c...c."""
    body = json.dumps(
        {"release_id": "r9", "version": "9.0", "pid": 999, "config_sha256": "c" * 64}
    ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/status"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def closed_url() -> str:
    """A /status URL on which nothing listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/status"
