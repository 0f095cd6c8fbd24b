"""QuickFIX as the independent counterparty of the conformance suite.

QuickFIX (the C++ engine, through its Python binding) shares no code with the
project's FIX stack (asyncfix and ``tradeops.brokers.fixconn``). Every session
here validates each inbound message against a data dictionary (``FIX44.xml``
as QuickFIX ships it, or the venue dictionary) and answers a violation with a
session Reject; :func:`violations` re-checks every logged message offline and
names the message and the tag of each violation.
"""

from __future__ import annotations

import sysconfig
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import quickfix as fix

SOH = "\x01"
FIX44_XML = Path(sysconfig.get_path("data")) / "share" / "quickfix" / "FIX44.xml"

REJECT_REASONS = {
    0: "invalid tag number",
    1: "required tag missing",
    2: "tag not defined for this message type",
    3: "undefined tag",
    4: "tag specified without a value",
    5: "value is incorrect (out of range)",
    6: "incorrect data format for value",
    9: "CompID problem",
    10: "SendingTime accuracy problem",
    11: "invalid MsgType",
    13: "tag appears more than once",
    14: "tag specified out of required order",
    15: "repeating group fields out of order",
    16: "incorrect NumInGroup count for repeating group",
    99: "other",
}


def fields(raw: str) -> list[tuple[str, str]]:
    """The ``tag=value`` pairs of a raw message, in order."""
    return [(k, v) for k, _unused, v in (p.partition("=") for p in raw.split(SOH) if p)]


def field(raw: str, tag: int | str) -> str | None:
    """The first value of ``tag`` in a raw message, or None."""
    want = str(tag)
    return next((v for k, v in fields(raw) if k == want), None)


def settings(
    path: Path,
    sessions: Iterable[dict[str, Any]],
    *,
    initiator: bool,
    dictionary: Path,
    work: Path,
) -> fix.SessionSettings:
    """Write QuickFIX settings with every validation on, and load them."""
    lines = [
        "[DEFAULT]",
        f"ConnectionType={'initiator' if initiator else 'acceptor'}",
        "ReconnectInterval=1",
        "StartTime=00:00:00",
        "EndTime=00:00:00",
        "HeartBtInt=30",
        f"FileStorePath={work / 'store'}",
        f"FileLogPath={work / 'log'}",
        "UseDataDictionary=Y",
        f"DataDictionary={dictionary}",
        "ValidateUserDefinedFields=Y",
        "AllowUnknownMsgFields=N",
        "ValidateFieldsOutOfOrder=Y",
        "ValidateFieldsHaveValues=Y",
        "ValidateLengthAndChecksum=Y",
        "CheckCompID=Y",
        "CheckLatency=Y",
        "MaxLatency=120",
        "SocketNodelay=Y",
        "",
    ]
    for session in sessions:
        lines += ["[SESSION]", *(f"{k}={v}" for k, v in session.items()), ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return fix.SessionSettings(str(path))


class Recorder(fix.Application):
    """A QuickFIX application that records what arrives; ``on_app`` may answer."""

    def __init__(self, on_app: Callable[[fix.Message, fix.SessionID], None] | None = None):
        super().__init__()
        self.cv = threading.Condition()
        self.inbound: list[tuple[str, str]] = []  # (our SenderCompID, raw)
        self.logged_on: set[str] = set()
        self.errors: list[str] = []
        self.on_app = on_app

    def onCreate(self, sid: fix.SessionID) -> None:  # noqa: N802
        """QuickFIX callback: a session exists."""

    def onLogon(self, sid: fix.SessionID) -> None:  # noqa: N802
        """QuickFIX callback: logged on."""
        with self.cv:
            self.logged_on.add(sid.getSenderCompID().getValue())
            self.cv.notify_all()

    def onLogout(self, sid: fix.SessionID) -> None:  # noqa: N802
        """QuickFIX callback: logged out."""
        with self.cv:
            self.logged_on.discard(sid.getSenderCompID().getValue())
            self.cv.notify_all()

    def toAdmin(self, msg: fix.Message, sid: fix.SessionID) -> None:  # noqa: N802
        """QuickFIX callback: a session message is going out."""

    def toApp(self, msg: fix.Message, sid: fix.SessionID) -> None:  # noqa: N802
        """QuickFIX callback: an application message is going out."""

    def fromAdmin(self, msg: fix.Message, sid: fix.SessionID) -> None:  # noqa: N802
        """QuickFIX callback: a session message arrived."""
        self._record(msg, sid)

    def fromApp(self, msg: fix.Message, sid: fix.SessionID) -> None:  # noqa: N802
        """QuickFIX callback: an application message arrived (validated already)."""
        self._record(msg, sid)
        if self.on_app is not None:
            # A QuickFIX exception raised here is QuickFIX's way of rejecting.
            self.on_app(msg, sid)

    def _record(self, msg: fix.Message, sid: fix.SessionID) -> None:
        with self.cv:
            self.inbound.append((sid.getSenderCompID().getValue(), msg.toString()))
            self.cv.notify_all()

    def count(self, session: str, msg_type: str, **tags: str) -> int:
        """How many messages of ``msg_type`` (with these tag values, ``_150="F"``) it got."""
        with self.cv:
            return self._count_locked(session, msg_type, tags)

    def wait(self, what: str, pred: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Wait (bounded) until ``pred()``; fail naming ``what``."""
        deadline = time.monotonic() + timeout_s
        with self.cv:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"QuickFIX peer: timed out waiting for {what}")
                self.cv.wait(min(left, 0.2))

    def wait_count(self, session: str, msg_type: str, n: int, **tags: str) -> None:
        """Wait until ``session`` got ``n`` messages of ``msg_type`` (with these tags)."""
        self.wait(
            f"{n} x 35={msg_type} {tags or ''} on {session}",
            lambda: self._count_locked(session, msg_type, tags) >= n,
        )

    def _count_locked(self, session: str, msg_type: str, tags: dict[str, str]) -> int:
        return sum(
            1
            for s, raw in self.inbound
            if s == session
            and field(raw, 35) == msg_type
            and all(field(raw, t.lstrip("_")) == v for t, v in tags.items())
        )


def message_log(work: Path, sender: str, target: str) -> list[str]:
    """Every message QuickFIX logged on one session, both ways, in order."""
    path = work / "log" / f"FIX.4.4-{sender}-{target}.messages.current.log"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        _unused, sep, raw = line.partition(" : ")
        if sep:
            out.append(raw)
    return out


@dataclass(frozen=True)
class Violation:
    """One data-dictionary violation in one message."""

    msg_type: str
    seq: str | None
    tag: int | None
    error: str

    def __str__(self) -> str:
        where = f"35={self.msg_type} (MsgSeqNum {self.seq})"
        if self.tag is None:
            return f"{where}: {self.error}"
        return f"{where}: tag {self.tag}: {self.error}"


def _reframe(pairs: list[tuple[str, str]]) -> str:
    body = "".join(f"{k}={v}{SOH}" for k, v in pairs if k not in ("8", "9", "10"))
    head = f"8=FIX.4.4{SOH}9={len(body.encode())}{SOH}{body}"
    return f"{head}10={sum(head.encode()) % 256:03d}{SOH}"


def violations(dictionary: fix.DataDictionary, raw: str, limit: int = 20) -> list[Violation]:
    """Every violation of ``raw`` against ``dictionary`` (validate, fix the culprit, repeat)."""
    found: list[Violation] = []
    msg_type, seq = field(raw, 35) or "?", field(raw, 34)
    current = raw
    culprits: set[int] = set()
    for _unused in range(limit):
        try:
            dictionary.validate(fix.Message(current, dictionary, False))
            return found
        except fix.FIXException as exc:
            tag = getattr(exc, "field", None)
            tag = int(tag) if tag else None
            kind = type(exc).__name__
            found.append(Violation(msg_type, seq, tag, f"{kind}: {exc}".strip()))
            if tag is None or tag in culprits:
                return found
            culprits.add(tag)
            pairs = fields(current)
            if kind == "RequiredTagMissing":
                pairs.insert(len(pairs) - 1, (str(tag), "0"))
            else:
                pairs = [(k, v) for k, v in pairs if k != str(tag)]
            current = _reframe(pairs)
    return found


def all_violations(dictionary: Path, messages: Iterable[str]) -> list[Violation]:
    """The violations of every message, checked offline."""
    dd = fix.DataDictionary(str(dictionary))
    out: list[Violation] = []
    for raw in messages:
        out += violations(dd, raw)
    return out


def rejects(messages: Iterable[str], sender: str) -> list[str]:
    """The session Rejects (3) and BusinessMessageRejects (j) ``sender`` sent, readable."""
    out = []
    for raw in messages:
        if field(raw, 49) != sender or field(raw, 35) not in ("3", "j"):
            continue
        reason = field(raw, 373)
        why = REJECT_REASONS.get(int(reason), reason) if reason and reason.isdigit() else ""
        out.append(
            f"{sender} sent 35={field(raw, 35)} for MsgSeqNum {field(raw, 45)} "
            f"(35={field(raw, 372)}): tag {field(raw, 371)} {why}; {field(raw, 58) or ''}".strip()
        )
    return out


def timestamp() -> str:
    """A FIX UTCTimestamp with milliseconds."""
    now = time.time()
    return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}"


def require_dictionary() -> Path:
    """QuickFIX's FIX44.xml, where its wheel installs it."""
    if not FIX44_XML.is_file():
        raise AssertionError(f"QuickFIX's FIX44.xml is not at {FIX44_XML}")
    return FIX44_XML
