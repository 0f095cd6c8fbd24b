"""A small HTTP/1.1 server on the refapp's event loop (stdlib asyncio only).

It serves the health, metrics and status endpoints and the loopback-only control
endpoints. Being on the trading loop is the point: when that loop is blocked,
``/healthz`` stops answering. One request per connection; bodies are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

MAX_HEADER_BYTES = 16 * 1024
READ_TIMEOUT_S = 5.0
_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass
class Request:
    """One parsed request."""

    method: str
    path: str
    query: dict[str, str]
    peer: str


@dataclass
class Response:
    """What a handler returns."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, **headers: str) -> Response:
        """Build a JSON response."""
        body = json.dumps(data, default=str, sort_keys=True).encode() + b"\n"
        return cls(status, body, "application/json", dict(headers))


Handler = Callable[[Request], Awaitable[Response]]


def is_loopback(peer: str) -> bool:
    """Return True for 127.0.0.0/8 and ::1 (and IPv4-mapped loopback)."""
    try:
        addr = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


class HttpServer:
    """Route ``(method, path)`` to handlers; answer 404/405 for the rest."""

    def __init__(self, routes: dict[tuple[str, str], Handler], *, control: set[str]) -> None:
        self._routes = routes
        self._control = control  # paths only loopback peers may call
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` only."""
        self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True)

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            peer = writer.get_extra_info("peername")
            peer_host = peer[0] if isinstance(peer, tuple) else ""
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            if len(head) > MAX_HEADER_BYTES:
                await self._write(writer, Response.json({"error": "headers too large"}, 400))
                return
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split(" ")
            if len(parts) != 3:
                await self._write(writer, Response.json({"error": "bad request line"}, 400))
                return
            method, target, _version = parts
            path, _sep, qs = target.partition("?")
            query = dict(p.partition("=")[::2] for p in qs.split("&") if p)
            request = Request(method.upper(), path, query, peer_host)
            await self._write(writer, await self._dispatch(request))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _dispatch(self, request: Request) -> Response:
        handler = self._routes.get((request.method, request.path))
        if handler is None:
            if any(path == request.path for _method, path in self._routes):
                return Response.json({"error": f"method {request.method} not allowed"}, 405)
            return Response.json({"error": f"no such endpoint {request.path}"}, 404)
        if request.path in self._control and not is_loopback(request.peer):
            return Response.json({"error": "control endpoints answer loopback only"}, 403)
        try:
            return await handler(request)
        except Exception as exc:  # a handler bug must not kill the server
            return Response.json({"error": f"{type(exc).__name__}: {exc}"}, 500)

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, response: Response) -> None:
        reason = _REASONS.get(response.status, "Unknown")
        headers = {
            "Content-Type": response.content_type,
            "Content-Length": str(len(response.body)),
            "Connection": "close",
            "Cache-Control": "no-store",
            **response.headers,
        }
        head = f"HTTP/1.1 {response.status} {reason}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()
        )
        writer.write(head.encode("latin-1") + b"\r\n" + response.body)
        await writer.drain()
