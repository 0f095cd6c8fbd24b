"""Operator notifications through apprise, against a local HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tradeops.agent.notify import Level, Message, Notifier, scheme
from tradeops.log import EventLog

pytest.importorskip("apprise")

TOKEN = "s3cr3t-token-0123456789"


class Receiver(ThreadingHTTPServer):
    """Keeps every JSON body POSTed to it; ``delay_s`` holds each answer back."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.delay = threading.Event()
        self.delay_s = delay_s
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.server.paths.append(self.path)
        self.server.bodies.append(json.loads(self.rfile.read(length)))
        if self.server.delay_s:
            self.server.delay.wait(self.server.delay_s)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@contextlib.contextmanager
def receiver(delay_s: float = 0.0) -> Iterator[Receiver]:
    server = Receiver(delay_s)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.delay.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def deliver(notifier: Notifier, *messages: Message, drain_s: float = 10.0) -> None:
    notifier.start()
    for message in messages:
        assert notifier.post(message)
    await notifier.stop(drain_s=drain_s)


TRIP = Message("trip", "dep-1 HALTED", "DAILY_LOSS: loss 12,000 over 10,000", Level.FAILURE)


def test_a_trip_reaches_the_receiver_with_its_title_body_and_level():
    stream = io.StringIO()
    with receiver() as rx:
        notifier = Notifier([f"json://127.0.0.1:{rx.port}/hook/{TOKEN}"], EventLog("agent", stream))
        asyncio.run(deliver(notifier, TRIP, Message("reset", "dep-1 ACTIVE", "reset by alice")))
    assert [(b["title"], b["message"], b["type"]) for b in rx.bodies] == [
        ("dep-1 HALTED", "DAILY_LOSS: loss 12,000 over 10,000", "failure"),
        ("dep-1 ACTIVE", "reset by alice", "info"),
    ]
    assert rx.paths == [f"/hook/{TOKEN}"] * 2
    assert (notifier.sent, notifier.failed) == (2, 0)
    logged = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(r["event"], r["notify_event"]) for r in logged] == [
        ("notified", "trip"),
        ("notified", "reset"),
    ]
    assert TOKEN not in stream.getvalue()


def test_an_unreachable_target_is_logged_without_its_url_and_never_raises():
    stream = io.StringIO()
    url = f"json://127.0.0.1:{closed_port()}/hook/{TOKEN}"
    notifier = Notifier([url], EventLog("agent", stream), timeout_s=10)
    asyncio.run(deliver(notifier, TRIP))
    assert (notifier.sent, notifier.failed) == (0, 1)
    (record,) = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert (record["event"], record["targets"]) == ("notify_failed", ["json"])
    assert TOKEN not in stream.getvalue()


def test_a_hung_receiver_costs_at_most_the_timeout_and_the_queue_is_bounded():
    stream = io.StringIO()
    with receiver(delay_s=30) as rx:
        notifier = Notifier(
            [f"json://127.0.0.1:{rx.port}/"],
            EventLog("agent", stream),
            timeout_s=0.2,
            max_pending=2,
        )

        async def scenario() -> list[bool]:
            notifier.start()
            queued = [notifier.post(TRIP) for _unused in range(5)]
            await notifier.stop(drain_s=5)
            return queued

        queued = asyncio.run(scenario())
    # The worker took the first at once; two more fit the queue; the rest are dropped.
    assert queued.count(False) == notifier.dropped
    assert notifier.dropped >= 2
    assert notifier.sent == 0
    events = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert "notify_dropped" in events
    assert "notify_failed" in events


def test_without_urls_nothing_is_queued_or_started():
    notifier = Notifier([], EventLog("agent", io.StringIO()))
    notifier.start()
    assert not notifier.post(TRIP)
    assert notifier.targets == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [("slack://T000/B000/XXXX", "slack"), ("json://h/p", "json"), ("no scheme", "invalid")],
)
def test_only_the_scheme_of_a_url_is_shown(url, expected):
    assert scheme(url) == expected
