"""Admin HTTP+JSON API of the simulator, and a small client for the CLI and tests.

The server is the standard library's threading HTTP server bound to the
configured admin address only; each request is executed on the simulator's
event loop (``SimServer.admin_request``), so it sees a consistent state.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from tradeops.sim.server import SimServer

MAX_BODY = 64 * 1024
DEFAULT_ADMIN_URL = "http://127.0.0.1:9877"


class AdminError(RuntimeError):
    """The admin API answered with an error, or could not be reached."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _handler(sim: SimServer, loop: asyncio.AbstractEventLoop) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "tradeops-sim"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the stdlib access log (requests are logged as events)."""

        def _reply(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def _json(self, status: int, payload: Any) -> None:
            body = json.dumps(payload, default=str, sort_keys=True).encode() + b"\n"
            self._reply(status, body, "application/json")

        def _dispatch(self, method: str) -> None:
            body: Any = None
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._json(413, {"ok": False, "error": "request body too large"})
                return
            if length:
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._json(400, {"ok": False, "error": "request body is not JSON"})
                    return
            path = urlsplit(self.path).path.rstrip("/") or "/"
            fut = asyncio.run_coroutine_threadsafe(sim.admin_request(method, path, body), loop)
            try:
                status, payload = fut.result(timeout=30)
            except Exception as exc:
                self._json(500, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
                return
            if isinstance(payload, bytes):
                self._reply(status, payload, "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._json(status, payload)

        def do_GET(self) -> None:
            """GET /health, /state, /faults, /metrics."""
            self._dispatch("GET")

        def do_POST(self) -> None:
            """POST /kill-switch, /faults/<kind>, /faults/clear."""
            self._dispatch("POST")

    return Handler


class AdminServer:
    """The admin HTTP listener, served from a background thread."""

    def __init__(self, sim: SimServer, host: str, port: int) -> None:
        self.sim = sim
        self.host = host
        self.port = port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind ``host:port`` and serve in a thread."""
        server_cls: type[_Server] = _Server
        if ":" in self.host:
            server_cls = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
        self._httpd = server_cls((self.host, self.port), _handler(self.sim, loop))
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="sim-admin",
            daemon=True,
        )
        self._thread.start()

    def sockname(self) -> tuple[Any, ...] | None:
        """Address actually bound."""
        return self._httpd.socket.getsockname() if self._httpd else None

    async def stop(self) -> None:
        """Stop serving and close the socket."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        await asyncio.to_thread(httpd.shutdown)
        httpd.server_close()


class AdminClient:
    """Blocking client of the admin API (for the CLI; tests call it via ``asyncio.to_thread``)."""

    def __init__(self, url: str = DEFAULT_ADMIN_URL, timeout_s: float = 10.0) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise AdminError(f"admin URL must be http(s)://host:port, got {url!r}")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _request(self, method: str, path: str, body: Any = None) -> tuple[bytes, str]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - admin URL from the operator
                return resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                msg = json.loads(raw).get("error", raw.decode(errors="replace"))
            except ValueError:
                msg = raw.decode(errors="replace")
            raise AdminError(f"{method} {path}: HTTP {exc.code}: {msg}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AdminError(
                f"cannot reach the simulator admin API at {self.url}: {reason}"
            ) from None

    def get(self, path: str) -> Any:
        """GET a JSON endpoint."""
        raw, _headers = self._request("GET", path)
        return json.loads(raw)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST JSON to an endpoint."""
        raw, _headers = self._request("POST", path, body or {})
        return json.loads(raw)

    def metrics(self) -> str:
        """The Prometheus exposition text."""
        raw, _headers = self._request("GET", "/metrics")
        return raw.decode()

    def state(self) -> dict[str, Any]:
        """GET /state."""
        return dict(self.get("/state"))

    def fault(self, kind: str, **params: Any) -> dict[str, Any]:
        """POST /faults/<kind> with ``params`` (None values left out)."""
        return dict(
            self.post(f"/faults/{kind}", {k: v for k, v in params.items() if v is not None})
        )

    def kill_switch(self, account: str, on: bool) -> dict[str, Any]:
        """POST /kill-switch."""
        return dict(self.post("/kill-switch", {"account": account, "state": "on" if on else "off"}))
