"""A faster encoder for asyncfix messages, with asyncfix's output.

asyncfix 1.0.1's :meth:`Codec.encode` spends most of its time in enum
lookups and a per-character checksum; in the simulator it was half of the
time spent per order. :class:`FastCodec` produces the same message, field for
field and byte for byte for ASCII content (tested against asyncfix's), from
the message's own tag dictionary. Two differences, both FIX-correct:
BodyLength and CheckSum count bytes, not characters (they differ only for
non-ASCII text), and SendingTime comes from an aware UTC clock (asyncfix's
``utcnow`` is deprecated). Decoding stays asyncfix's.
"""

from __future__ import annotations

from typing import Any

from asyncfix import FMsg, FTag
from asyncfix.codec import Codec
from asyncfix.errors import EncodingError
from asyncfix.message import FIXMessage, _FIXRepeatingGroupContainer
from asyncfix.session import FIXSession

from tradeops.brokers.fixproto import fix_utc_now

_HEADER = frozenset({"34", "52", "49", "56"})  # written by the encoder itself
_SEQ, _POSSDUP = str(FTag.MsgSeqNum), str(FTag.PossDupFlag)


def _append_fields(tags: dict[str, Any], out: list[str]) -> None:
    for tag, value in tags.items():
        if isinstance(value, _FIXRepeatingGroupContainer):
            out.append(f"{tag}={len(value.groups)}")
            for group in value.groups:
                _append_fields(group.tags, out)
        else:
            out.append(f"{tag}={value}")


class FastCodec(Codec):
    """asyncfix's codec with a faster :meth:`encode`."""

    def encode(self, msg: FIXMessage, session: FIXSession, raw_seq_num: bool = False) -> str:
        """Serialise ``msg`` for ``session``; allocates its MsgSeqNum like asyncfix."""
        tags = msg.tags
        if raw_seq_num or msg.msg_type == FMsg.SEQUENCERESET:
            if _SEQ not in tags:
                raise EncodingError("SequenceReset must have the MsgSeqNum already populated")
            seq_no = tags[_SEQ]
        elif tags.get(_POSSDUP) == "Y":
            if _SEQ not in tags:
                raise EncodingError(
                    "Failed to encode message with PossDupFlag=Y but no previous MsgSeqNum"
                )
            seq_no = tags[_SEQ]
        else:
            seq_no = session.allocate_next_num_out()
        fields = [
            f"49={session.sender_comp_id}",
            f"56={session.target_comp_id}",
            f"34={seq_no}",
            f"52={fix_utc_now()}",
        ]
        _append_fields({t: v for t, v in tags.items() if t not in _HEADER}, fields)
        body = ("\x01".join(fields) + "\x01").encode()
        msg_type = f"35={msg.msg_type}\x01".encode()
        head = f"8={self.protocol.beginstring}\x019={len(body) + len(msg_type)}\x01".encode()
        frame = head + msg_type + body
        return (frame + b"10=%03d\x01" % (sum(frame) % 256)).decode()
