"""Operator notifications from the agent (trip, reset, start), through apprise.

apprise speaks to most chat, paging and mail services from one URL each
(``slack://...``, ``pagerduty://...``, ``json://host/path``...). Those URLs
carry tokens, so they are secrets: they are never logged, returned or
printed; a log line names only the scheme of each target.

Sending is off the event loop (apprise is blocking) and bounded: one worker,
a queue of at most ``MAX_PENDING`` messages (beyond that a message is dropped
and the drop logged), ``timeout_s`` per message. A notification never delays
a halt and a failure to notify never raises into the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tradeops.log import EventLog

MAX_PENDING = 100
DEFAULT_TIMEOUT_S = 5.0


class Level(enum.StrEnum):
    """How urgent a notification is (apprise's notify types)."""

    INFO = "info"
    WARNING = "warning"
    FAILURE = "failure"


@dataclass(frozen=True, slots=True)
class Message:
    """One notification: ``event`` names it in the logs (``trip``, ``reset``, ``start``)."""

    event: str
    title: str
    body: str
    level: Level = Level.INFO


def scheme(url: str) -> str:
    """The scheme of an apprise URL: all of it that may be logged."""
    head, sep, _rest = url.partition("://")
    return head if sep and head.isalnum() else "invalid"


class Notifier:
    """Send :class:`Message` s to every configured apprise URL, in order, from one worker."""

    def __init__(
        self,
        urls: Sequence[str],
        log: EventLog,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self._urls = tuple(urls)
        self._log = log
        self._timeout_s = timeout_s
        self._queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=max_pending)
        self._worker: asyncio.Task[None] | None = None
        self._apprise: Any = None
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    @property
    def targets(self) -> list[str]:
        """The scheme of each target (safe to log)."""
        return [scheme(url) for url in self._urls]

    def _client(self) -> Any:
        """The apprise object, built once (apprise is imported only if notifications are on)."""
        if self._apprise is None:
            import apprise

            logging.getLogger("apprise").setLevel(logging.WARNING)
            client = apprise.Apprise()
            for url in self._urls:
                if not client.add(url):
                    self._log.event("notify_target_invalid", scheme=scheme(url))
            self._apprise = client
        return self._apprise

    def start(self) -> None:
        """Start the worker (in the running loop); a notifier without URLs does nothing."""
        if self._urls and self._worker is None:
            self._client()
            self._worker = asyncio.create_task(self._run(), name="notifier")

    async def stop(self, drain_s: float = 2.0) -> None:
        """Give pending messages up to ``drain_s``, then stop the worker."""
        if self._worker is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), drain_s)
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        self._worker = None

    def post(self, message: Message) -> bool:
        """Queue ``message`` without waiting; False (and a logged drop) if the queue is full."""
        if not self._urls:
            return False
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1
            self._log.event(
                "notify_dropped", notify_event=message.event, pending=self._queue.qsize()
            )
            return False
        return True

    async def _run(self) -> None:
        while True:
            message = await self._queue.get()
            try:
                await self._send(message)
            finally:
                self._queue.task_done()

    async def _send(self, message: Message) -> None:
        client = self._client()
        try:
            ok = await asyncio.wait_for(
                asyncio.to_thread(
                    client.notify,
                    title=message.title,
                    body=message.body,
                    notify_type=message.level.value,
                ),
                self._timeout_s,
            )
        except TimeoutError:
            ok, why = False, f"no answer in {self._timeout_s:g} s"
        except Exception as exc:  # apprise or a plugin failed: never into the agent
            ok, why = False, type(exc).__name__
        else:
            why = "" if ok else "a target refused it or was unreachable"
        if ok:
            self.sent += 1
            self._log.event("notified", notify_event=message.event, targets=self.targets)
        else:
            self.failed += 1
            self._log.event(
                "notify_failed", notify_event=message.event, targets=self.targets, why=why
            )
