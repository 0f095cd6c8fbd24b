"""The Unix socket's accept thread: a halt is published before asyncio sees the connection.

The agent's event loop costs about 200 µs between a connection and its first
frame (accept, stream objects, a task, a read, several loop turns). A halt
must not wait for that. This thread does the blocking ``accept``, checks the
peer's credentials (``SO_PEERCRED``), and *peeks* at the first frame (the
bytes stay in the socket); when it is a valid ``halt`` from a peer allowed to
send one, it writes HALTED in place into the trading-state file at once
(``prepublish``: nothing is stricter than HALTED, so this needs nothing else
of the agent's state). Then it hands the socket to the event loop, which
reads the same frame and carries the request out as for any other: the trip,
its audit, its answer, the halt sequence. Everything but that early write
stays on the loop; the thread never touches the state machine's memory.

Bounded: ``accept`` waits at most ``ACCEPT_POLL_S`` before it checks for a
stop, and a peek waits at most ``PEEK_S`` for the first frame (a client
slower than that is served by the loop alone, without the early write).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

from tradeops.agent import haltframe
from tradeops.agent.protocol import MAX_FRAME, Command, HaltArgs, ProtocolError, parse_request
from tradeops.agent.reasons import Reason

ACCEPT_POLL_S = 0.25
PEEK_S = 0.02

# (peer socket) -> whether its uid or groups may send a halt
PeerCheck = Callable[[socket.socket], bool]
# (reason code, who) -> None: write HALTED in place
Prepublish = Callable[[Reason, str], None]


def peek_halt(
    conn: socket.socket, now: float, window_s: float, wait_s: float = PEEK_S
) -> tuple[Reason, str] | None:
    """The first frame of ``conn``, if it is a valid halt: (its reason code, who); else None.

    The bytes are peeked, not read: the event loop reads the frame again. The
    form every tradeops client writes is recognised by ``haltframe`` (a
    regular expression); any other valid halt by ``parse_request``.
    """
    conn.settimeout(wait_s)
    try:
        data = conn.recv(MAX_FRAME, socket.MSG_PEEK)
    except (TimeoutError, OSError):
        return None
    finally:
        conn.settimeout(None)
    end = data.find(b"\n")
    if end < 0:
        return None
    canonical = haltframe.match(data[:end])
    if canonical is not None:
        return canonical
    try:
        request = parse_request(data[:end], now, window_s, lenient=frozenset({Command.HALT}))
    except ProtocolError:
        return None
    if request.cmd is not Command.HALT or not isinstance(request.args, HaltArgs):
        return None
    return request.args.reason_code, request.who


class UnixAcceptor:
    """Accept on ``sock`` in a thread; prepublish halts; hand every socket to ``on_socket``."""

    def __init__(
        self,
        sock: socket.socket,
        allowed_to_halt: PeerCheck,
        prepublish: Prepublish,
        on_socket: Callable[[socket.socket], None],
        window_s: float,
        on_error: Callable[[str], None],
        clock: Callable[[], float] = time.time,
        on_start: Callable[[], None] | None = None,
    ) -> None:
        self._sock = sock
        self._allowed = allowed_to_halt
        self._prepublish = prepublish
        self._on_socket = on_socket
        self._window_s = window_s
        self._on_error = on_error
        self._clock = clock
        self._on_start = on_start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agent-unix-accept", daemon=True)

    def start(self) -> None:
        """Start accepting."""
        self._sock.setblocking(True)
        self._sock.settimeout(ACCEPT_POLL_S)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop accepting (the socket is closed by its owner)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        if self._on_start is not None:
            try:
                self._on_start()  # e.g. take the agent's real-time policy (scheduling.py)
            except Exception as exc:
                self._on_error(f"start: {type(exc).__name__}: {exc}")
        while not self._stop.is_set():
            try:
                conn, _addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if self._stop.is_set():
                    return
                self._on_error(f"accept: {exc}")
                self._stop.wait(ACCEPT_POLL_S)  # e.g. out of file descriptors: do not spin
                continue
            try:
                self._fast_path(conn)
            except Exception as exc:  # the loop still serves the connection
                self._on_error(f"fast path: {type(exc).__name__}: {exc}")
            try:
                conn.setblocking(False)
                self._on_socket(conn)
            except Exception as exc:
                self._on_error(f"hand-over: {type(exc).__name__}: {exc}")
                with contextlib.suppress(OSError):
                    conn.close()

    def _fast_path(self, conn: socket.socket) -> None:
        if not self._allowed(conn):
            return  # the loop refuses it, audited
        halt = peek_halt(conn, self._clock(), self._window_s)
        if halt is not None:
            self._prepublish(*halt)
