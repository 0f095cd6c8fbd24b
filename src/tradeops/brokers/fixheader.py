"""FIX 4.4 standard-header checks and session Rejects, on frames :func:`cut_frame` accepted.

Pure functions of the frame's bytes (asyncfix-fix 8 in
:mod:`tradeops.brokers.fixconn` applies them): which header rule a message
breaks, the SessionRejectReason (373) it earns, whether a Logout follows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from asyncfix import FIXMessage, FMsg, FTag

from tradeops.brokers.fixframing import excerpt

HEADER_TAGS = frozenset(
    {
        str(FTag.BeginString),
        str(FTag.BodyLength),
        str(FTag.MsgType),
        str(FTag.SenderCompID),
        str(FTag.TargetCompID),
        str(FTag.MsgSeqNum),
        str(FTag.SendingTime),
        str(FTag.PossDupFlag),
        str(FTag.OrigSendingTime),
        str(FTag.CheckSum),
    }
)

# SessionRejectReason (373) values used by the session layer (FIX 4.4).
SR_INVALID_TAG_NUMBER = 0
SR_REQUIRED_TAG_MISSING = 1
SR_VALUE_INCORRECT = 5
SR_INCORRECT_DATA_FORMAT = 6
SR_COMPID_PROBLEM = 9
SR_TAG_REPEATED = 13
SR_OTHER = 99


@dataclass(frozen=True, slots=True)
class Header:
    """The standard header of a frame, read without asyncfix (first value of each tag)."""

    fields: dict[str, str]
    repeated: frozenset[str]  # header tags that appear more than once
    bad_field: str | None  # the first field that is not <number>=<value>

    def get(self, tag: FTag | str) -> str | None:
        """The value of header ``tag``, or None."""
        return self.fields.get(str(tag))

    @property
    def msg_type(self) -> str:
        """MsgType (35); framing guarantees it."""
        return self.fields.get("35", "")

    @property
    def poss_dup(self) -> bool:
        """PossDupFlag (43) is Y."""
        return self.fields.get("43") == "Y"

    @property
    def seq_num(self) -> int | None:
        """MsgSeqNum (34) if it is one positive integer, else None."""
        value = self.fields.get("34", "")
        if "34" in self.repeated or not value.isascii() or not value.isdigit():
            return None
        return int(value) or None


def parse_header(frame: bytes) -> Header:
    """Read the header fields of a frame that :func:`cut_frame` accepted."""
    fields: dict[str, str] = {}
    repeated: set[str] = set()
    bad_field: str | None = None
    for item in frame[:-1].split(b"\x01"):
        tag, sep, value = item.partition(b"=")
        if not sep or not tag.isdigit():
            bad_field = bad_field or excerpt(item, 32)
            continue
        key = tag.decode("ascii")
        if key not in HEADER_TAGS:
            continue
        if key in fields:
            repeated.add(key)
        else:
            fields[key] = value.decode("latin-1")
    return Header(fields, frozenset(repeated), bad_field)


@dataclass(frozen=True, slots=True)
class Fault:
    """Why a message is answered by a session Reject (35=3), and whether a Logout follows."""

    reason: int
    tag: str | None
    text: str
    logout_text: str | None = None


_SENDING_TIME = re.compile(r"\d{8}-\d{2}:\d{2}:\d{2}(\.\d{1,9})?")


def header_fault(header: Header, peer_comp_id: str, our_comp_id: str) -> Fault | None:
    """The first FIX 4.4 header rule ``header`` breaks (MsgSeqNum is checked before)."""
    if header.bad_field is not None:
        return Fault(SR_INVALID_TAG_NUMBER, None, f"invalid field {header.bad_field!r}")
    for tag in ("49", "56"):
        if header.get(tag) is None:
            return Fault(SR_REQUIRED_TAG_MISSING, tag, f"required tag {tag} missing")
    if header.get("49") != peer_comp_id or header.get("56") != our_comp_id:
        tag = "49" if header.get("49") != peer_comp_id else "56"
        return Fault(
            SR_COMPID_PROBLEM,
            tag,
            f"CompID problem: 49={header.get('49')} 56={header.get('56')}",
            logout_text="TargetCompID / SenderCompID mismatch",
        )
    if header.repeated:
        tag = min(header.repeated)
        return Fault(SR_TAG_REPEATED, tag, f"tag {tag} appears more than once")
    sending_time = header.get("52")
    if sending_time is None:
        return Fault(SR_REQUIRED_TAG_MISSING, "52", "required tag 52 missing")
    if not _SENDING_TIME.fullmatch(sending_time):
        return Fault(SR_INCORRECT_DATA_FORMAT, "52", "SendingTime(52) has a bad format")
    if header.poss_dup and header.msg_type != "4" and header.get("122") is None:
        return Fault(
            SR_REQUIRED_TAG_MISSING, "122", "OrigSendingTime(122) required with PossDupFlag=Y"
        )
    return None


def seqreset_fault(msg: FIXMessage, seq: int, next_in: int) -> Fault | None:
    """A SequenceReset that FIX 4.4 rejects: no valid NewSeqNo, or one that goes back."""
    value = str(msg.get(FTag.NewSeqNo, ""))
    if value == "":
        return Fault(SR_REQUIRED_TAG_MISSING, "36", "required tag 36 missing")
    if not value.isascii() or not value.isdigit() or int(value) == 0:
        return Fault(SR_INCORRECT_DATA_FORMAT, "36", "NewSeqNo(36) is not a positive integer")
    new = int(value)
    gap_fill = msg.get(FTag.GapFillFlag, "N") == "Y"
    if new < next_in or (gap_fill and new <= seq):
        return Fault(
            SR_VALUE_INCORRECT,
            "36",
            f"attempt to lower sequence number, invalid value NewSeqNo={new}",
        )
    return None


def session_reject(ref_seq: int, ref_msg_type: str | None, fault: Fault) -> FIXMessage:
    """A session-level Reject (35=3) of message ``ref_seq``."""
    msg = FIXMessage(FMsg.REJECT)
    msg[FTag.RefSeqNum] = ref_seq
    if fault.tag:
        msg[FTag.RefTagID] = fault.tag
    if ref_msg_type:
        msg[FTag.RefMsgType] = ref_msg_type
    msg[FTag.SessionRejectReason] = fault.reason
    msg[FTag.Text] = fault.text
    return msg
