"""An in-memory journal of one FIX session, for sessions that keep nothing on disk.

asyncfix's :class:`Journaler` with no file is an in-memory SQLite database:
every message costs an INSERT, an UPDATE and a COMMIT, about a tenth of what
the simulator spends per order, to keep what a Python dictionary keeps as
well. :class:`MemoryJournaler` keeps the messages in a dictionary and the
sequence numbers in the session object, with the same methods and the same
errors (a duplicate MsgSeqNum raises :class:`DuplicateSeqNoError`). Its SQLite
connection still exists (empty): callers may commit or close it.
"""

from __future__ import annotations

from collections.abc import Iterable

from asyncfix.errors import DuplicateSeqNoError
from asyncfix.journaler import Journaler
from asyncfix.message import MessageDirection
from asyncfix.session import FIXSession


class MemoryJournaler(Journaler):
    """asyncfix's Journaler API over dictionaries; nothing survives the process."""

    def __init__(self) -> None:
        super().__init__(None)
        # (session key, direction value) -> {MsgSeqNum: encoded message}
        self._messages: dict[tuple[object, int], dict[int, bytes]] = {}

    def _box(self, session: FIXSession, direction: MessageDirection) -> dict[int, bytes]:
        key = (session.key, direction.value)
        box = self._messages.get(key)
        if box is None:
            box = self._messages[key] = {}
        return box

    def persist_msg(self, msg: bytes, session: FIXSession, direction: MessageDirection) -> None:
        """Keep ``msg`` under its MsgSeqNum."""
        seq_no = self.find_seq_no(msg)
        box = self._box(session, direction)
        if seq_no in box:
            raise DuplicateSeqNoError(f"{seq_no} is a duplicate")
        box[seq_no] = msg

    def recover_messages(
        self,
        session: FIXSession,
        direction: MessageDirection,
        start_seq_no: int | str,
        end_seq_no: int | str,
    ) -> list[bytes]:
        """The messages with MsgSeqNum from ``start_seq_no`` to ``end_seq_no``, in order."""
        box = self._box(session, direction)
        start, end = int(start_seq_no), int(end_seq_no)
        return [box[seq] for seq in sorted(box) if start <= seq <= end]

    def set_seq_num(
        self,
        session: FIXSession,
        next_num_out: int | None = None,
        next_num_in: int | None = None,
    ) -> None:
        """Set the next sequence numbers; forget messages at or after them."""
        if next_num_out is not None:
            assert next_num_out > 0
            session.next_num_out = next_num_out
        if next_num_in is not None:
            assert next_num_in > 0
            session.next_num_in = next_num_in
        self._forget(self._box(session, MessageDirection.INBOUND), session.next_num_in)
        self._forget(self._box(session, MessageDirection.OUTBOUND), session.next_num_out)

    @staticmethod
    def _forget(box: dict[int, bytes], first: int) -> None:
        for seq in [s for s in box if s >= first]:
            del box[seq]

    def get_all_msgs(
        self,
        sessions: Iterable[FIXSession | object] | None = None,
        direction: MessageDirection | None = None,
    ) -> list[tuple[int, bytes, int, object]]:
        """Every message: (MsgSeqNum, message, direction, session key), by session and number."""
        keys = None
        if sessions:
            keys = {s.key if isinstance(s, FIXSession) else s for s in sessions}
        out = []
        for (key, way), box in self._messages.items():
            if keys is not None and key not in keys:
                continue
            if direction is not None and way != direction.value:
                continue
            out += [(seq, box[seq], way, key) for seq in sorted(box)]
        return out
