"""FIX framing: cut a byte stream into frames by BodyLength and CheckSum, with a size limit.

asyncfix's reader wedges on a non-numeric BodyLength, accepts one that is too
short, drops its whole buffer on a foreign BeginString and reports a bad
CheckSum only on stderr (asyncfix-fix 7 in :mod:`tradeops.brokers.fixconn`).
:func:`cut_frame` finds the next frame or the garbled bytes to discard before
it; reading resumes at the next ``8=FIX`` start (FIX 4.4: garbled messages
are ignored, not counted).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

DEFAULT_MAX_FRAME_BYTES = 1 << 20  # a frame (BeginString to CheckSum) larger than this is garbled


class CutKind(enum.Enum):
    """What :func:`cut_frame` found at the start of the buffer."""

    FRAME = "frame"
    GARBLED = "garbled"
    NEED_MORE = "need_more"


class GarbleReason(enum.StrEnum):
    """Why bytes were discarded (the ``reason`` of a ``garbled_frame`` event)."""

    GARBAGE = "garbage"  # bytes that do not start a frame
    BODY_LENGTH_INVALID = "body_length_invalid"  # BodyLength(9) not a number
    FRAME_TOO_LARGE = "frame_too_large"  # BodyLength says more than max_frame_bytes
    TRUNCATED = "truncated"  # another frame starts before this one's stated end
    BODY_LENGTH_MISMATCH = "body_length_mismatch"  # no CheckSum(10) where BodyLength says
    BAD_CHECKSUM = "bad_checksum"
    MSG_TYPE_NOT_THIRD = "msg_type_not_third"  # MsgType(35) missing or not the third field


@dataclass(frozen=True, slots=True)
class Cut:
    """The next ``size`` bytes of the buffer are a frame, or garbled (``reason``)."""

    kind: CutKind
    size: int = 0
    reason: GarbleReason | None = None


_NEED_MORE = Cut(CutKind.NEED_MORE)
# A frame starts with BeginString then the BodyLength tag: "8=FIX.4.4<SOH>9=".
_FRAME_START = re.compile(rb"8=FIXT?\.\d\.\d\x019=")
_FRAME_START_TEMPLATES = (b"8=FIX.#.#\x019=", b"8=FIXT.#.#\x019=")  # '#' is a digit
_FRAME_START_MAX = max(len(t) for t in _FRAME_START_TEMPLATES)
_BODY_LENGTH = re.compile(rb"(\d{1,9})\x01")
_BODY_LENGTH_DIGITS = 9
_TRAILER = re.compile(rb"\x0110=(\d{3})\x01")
_TRAILER_SIZE = len(b"10=000\x01")
_DIGITS = range(0x30, 0x3A)


def _is_frame_start_prefix(data: bytes) -> bool:
    """True if ``data`` may be the first bytes of a frame start (more bytes needed)."""
    return any(
        len(data) < len(template)
        and all(
            t == c or (t == 0x23 and c in _DIGITS)
            for t, c in zip(template[: len(data)], data, strict=True)
        )
        for template in _FRAME_START_TEMPLATES
    )


def _next_start(buf: bytes | bytearray, start: int) -> int:
    """Offset of the first frame start at or after ``start``, else of a partial one at the end.

    ``len(buf)`` when there is neither: every byte before it is garbage.
    """
    found = _FRAME_START.search(buf, start)
    if found is not None:
        return found.start()
    for i in range(max(start, len(buf) - _FRAME_START_MAX + 1), len(buf)):
        if _is_frame_start_prefix(bytes(buf[i:])):
            return i
    return len(buf)


def _skip(buf: bytes | bytearray, reason: GarbleReason) -> Cut:
    """Discard a frame whose end is unknown: up to the next frame start."""
    return Cut(CutKind.GARBLED, _next_start(buf, 1), reason)


def cut_frame(buf: bytes | bytearray, max_frame: int = DEFAULT_MAX_FRAME_BYTES) -> Cut:
    """Find the first frame of ``buf``, or the garbled bytes to discard before it.

    A frame is BeginString, BodyLength, MsgType as the first three fields,
    CheckSum as the last at the offset BodyLength gives, with the right value.
    """
    head = _FRAME_START.match(buf)
    if head is None:
        if _is_frame_start_prefix(bytes(buf)):
            return _NEED_MORE
        return Cut(CutKind.GARBLED, _next_start(buf, 1), GarbleReason.GARBAGE)
    length = _BODY_LENGTH.match(buf, head.end())
    if length is None:
        pending = bytes(buf[head.end() :])
        if len(pending) <= _BODY_LENGTH_DIGITS and all(c in _DIGITS for c in pending):
            return _NEED_MORE
        return _skip(buf, GarbleReason.BODY_LENGTH_INVALID)
    body_start = length.end()
    body_end = body_start + int(length.group(1))
    frame_end = body_end + _TRAILER_SIZE
    if frame_end > max_frame:
        return _skip(buf, GarbleReason.FRAME_TOO_LARGE)
    inner = _FRAME_START.search(buf, body_start, min(frame_end, len(buf)))
    if inner is not None:
        return Cut(CutKind.GARBLED, inner.start(), GarbleReason.TRUNCATED)
    if len(buf) < frame_end:
        return _NEED_MORE
    trailer = _TRAILER.match(buf, body_end - 1)
    if trailer is None or trailer.end() != frame_end:
        return _skip(buf, GarbleReason.BODY_LENGTH_MISMATCH)
    if sum(buf[:body_end]) % 256 != int(trailer.group(1)):
        return Cut(CutKind.GARBLED, frame_end, GarbleReason.BAD_CHECKSUM)
    if not buf.startswith(b"35=", body_start):
        return Cut(CutKind.GARBLED, frame_end, GarbleReason.MSG_TYPE_NOT_THIRD)
    return Cut(CutKind.FRAME, frame_end)


_SECRET_FIELD = re.compile(rb"(^|\x01)(554|925|96)=[^\x01]*")


def excerpt(data: bytes, limit: int = 64) -> str:
    """A short printable excerpt of ``data`` for a log: SOH as ``|``, passwords masked."""
    masked = _SECRET_FIELD.sub(rb"\1\2=***", data[: limit * 4])[:limit]
    text = "".join("|" if b == 1 else chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}" for b in masked)
    return text + ("..." if len(data) > limit else "")
