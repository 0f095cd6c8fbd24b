"""Shared fixtures of the process tests: a fake status endpoint and a real supervisord."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import xmlrpc.client
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.ci import unavailable

SUPERVISORD = Path(sys.executable).with_name("supervisord")
PROGRAM = "strat"
# Every wait below is bounded by count as well as by this many 0.1 s steps.
WAIT_STEPS = 150


class StatusServer:
    """A /status endpoint in a thread whose answer the test changes at will."""

    def __init__(self) -> None:
        self.body = json.dumps({"release_id": "r1", "version": "1.0", "pid": 1001}).encode()
        self.status = 200
        self.hits = 0
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.hits += 1
                    body, status = server.body, server.status
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                del format, args  # keep the test output clean

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        """The /status URL."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/status"

    def answer(self, **fields: Any) -> None:
        """Answer ``fields`` as a JSON object from now on."""
        self.raw(json.dumps(fields).encode())

    def raw(self, body: bytes, status: int = 200) -> None:
        """Answer ``body`` verbatim from now on."""
        with self._lock:
            self.body, self.status = body, status


@pytest.fixture
def status_server() -> Iterator[StatusServer]:
    """A running StatusServer; shut down after the test."""
    server = StatusServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        server.thread.join(timeout=5)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_url() -> str:
    """A /status URL on which nothing listens."""
    return f"http://127.0.0.1:{free_port()}/status"


# The managed program: a tiny HTTP server that reports the release it was started with
# (read once at start, like the launcher's TRADEOPS_RELEASE_ID) and its own pid.
STRAT_SCRIPT = textwrap.dedent(
    """\
    import http.server, json, os, sys
    from pathlib import Path

    root, port = Path(sys.argv[1]), int(sys.argv[2])
    release = (root / "release_id").read_text().strip()
    if release.startswith("broken"):  # a release that cannot start
        print("starting", release, flush=True)
        print("config error: fault_mode must be one of none, crash", flush=True)
        sys.exit(3)
    (root / "run" / "strat.pid").write_text(str(os.getpid()))
    status = {"release_id": release, "version": "v-" + release, "pid": os.getpid()}
    if (root / "config_sha256").exists():  # the config this start loaded
        status["config_sha256"] = (root / "config_sha256").read_text().strip()
    body = json.dumps(status).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/status":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
    """
)

SUPERVISORD_CONF = """\
[unix_http_server]
file={root}/run/supervisor.sock
chmod=0700

[supervisord]
logfile={root}/shared/log/supervisord.log
pidfile={root}/run/supervisord.pid
childlogdir={root}/shared/log
directory={root}
identifier=tradeops-test

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[include]
files = {root}/supervisor/conf.d/*.conf
"""


@dataclass
class SupervisedHost:
    """A host root with its own supervisord, and the strategy program it may run."""

    root: Path
    port: int
    daemon: subprocess.Popen[bytes]

    @property
    def status_url(self) -> str:
        """Where the strategy program answers /status."""
        return f"http://127.0.0.1:{self.port}/status"

    @property
    def conf_file(self) -> Path:
        """The program's definition file under conf.d."""
        return self.root / "supervisor" / "conf.d" / f"{PROGRAM}.conf"

    def definition(self, *, autostart: bool = True, extra: str = "") -> str:
        """The program section that runs the strategy script."""
        return (
            f"[program:{PROGRAM}]\n"
            f"command={sys.executable} {self.root}/strat.py {self.root} {self.port}\n"
            f"directory={self.root}\n"
            f"autostart={'true' if autostart else 'false'}\n"
            "autorestart=false\n"
            "startsecs=0\n"
            "stopsignal=TERM\n"
            "stopwaitsecs=5\n"
            "redirect_stderr=true\n"
            f"stdout_logfile={self.root}/shared/log/{PROGRAM}.log\n"
            f"{extra}"
        )

    def set_release(self, release_id: str) -> None:
        """The release the next start of the program will report."""
        (self.root / "release_id").write_text(f"{release_id}\n")

    def set_config(self, sha256: str) -> None:
        """The config digest the next start of the program will report."""
        (self.root / "config_sha256").write_text(f"{sha256}\n")

    def rpc(self) -> Any:
        """supervisord's XML-RPC namespace, straight (not through the code under test)."""
        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, f"unix://{self.root}/run/supervisor.sock")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def info(self) -> dict[str, Any] | None:
        """supervisord's process info of the program, None when it does not know it."""
        try:
            return dict(self.rpc().getProcessInfo(PROGRAM))
        except xmlrpc.client.Fault as exc:
            if "BAD_NAME" in exc.faultString:
                return None
            raise

    def wait_state(self, *states: str) -> dict[str, Any]:
        """Wait (bounded) until the program is in one of ``states``; its info."""
        info = None
        for _attempt in range(WAIT_STEPS):
            info = self.info()
            if info is not None and info["statename"] in states:
                return info
            time.sleep(0.1)
        raise AssertionError(f"{PROGRAM} never reached {states}: last info {info}")

    def wait_answer(self) -> dict[str, Any]:
        """Wait (bounded) until the program answers /status with its pid; the answer."""
        from tradeops.process.running import read_running

        answer = None
        for _attempt in range(WAIT_STEPS):
            answer = read_running(self.status_url, timeout_s=1.0)
            if answer.pid is not None:
                return answer.as_dict()
            time.sleep(0.1)
        raise AssertionError(f"{PROGRAM} never answered on {self.status_url}: {answer}")

    def log(self) -> str:
        """supervisord's own output, for failure messages."""
        path = self.root / "supervisord.out"
        return path.read_text(errors="replace") if path.exists() else ""


def _host_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bool]:
    """A short root: a Unix socket path must stay under ~100 bytes."""
    root = tmp_path_factory.mktemp("sv")
    if len(str(root / "run" / "supervisor.sock")) < 100:
        return root, False
    return Path(tempfile.mkdtemp(prefix="sv", dir="/tmp")), True


def _stop_strategy_left_behind(root: Path) -> None:
    """SIGTERM, wait a little, SIGKILL the strategy a killed daemon left behind.

    Only the pid the script recorded, and only while it still runs this root's script.
    """
    pid_file = root / "run" / "strat.pid"
    try:
        pid = int(pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if f"{root}/strat.py".encode() not in cmdline:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        for _attempt in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def _stop_daemon(daemon: subprocess.Popen[bytes]) -> bool:
    """Stop our supervisord by its pid; True when it exited by itself (programs stopped)."""
    if daemon.poll() is not None:
        return False
    daemon.send_signal(signal.SIGTERM)  # supervisord stops its programs, then exits
    try:
        daemon.wait(timeout=20)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait(timeout=10)
        return False
    return True


@pytest.fixture
def supervised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisedHost]:
    """A real supervisord (``supervisord -n``, our child) serving ``<root>/run/supervisor.sock``.

    Skips, with the reason, when supervisord is not installed or does not come up
    (fails instead under CI=true).
    """
    if not SUPERVISORD.exists():
        unavailable(f"supervisord is not installed next to {sys.executable}")
    root, own_tmp = _host_root(tmp_path_factory)
    for rel in ("run", "supervisor/conf.d", "shared/log", "state"):
        (root / rel).mkdir(parents=True, exist_ok=True)
    (root / "strat.py").write_text(STRAT_SCRIPT)
    conf = root / "supervisor" / "supervisord.conf"
    conf.write_text(SUPERVISORD_CONF.format(root=root))
    with (root / "supervisord.out").open("wb") as out:
        daemon = subprocess.Popen(
            [str(SUPERVISORD), "-n", "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    host = SupervisedHost(root, free_port(), daemon)
    host.set_release("r1")
    try:
        ready = False
        for _attempt in range(WAIT_STEPS):
            if daemon.poll() is not None:
                break
            if (root / "run" / "supervisor.sock").exists():
                try:
                    ready = host.rpc().getState()["statename"] == "RUNNING"
                except OSError:
                    ready = False
                if ready:
                    break
            time.sleep(0.1)
        if not ready:
            unavailable(f"supervisord did not start (exit {daemon.poll()}): {host.log()[-2000:]}")
        yield host
    finally:
        if not _stop_daemon(daemon):
            _stop_strategy_left_behind(root)
        if own_tmp:
            shutil.rmtree(root, ignore_errors=True)
