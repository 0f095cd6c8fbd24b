"""MemoryJournaler keeps what asyncfix's in-memory SQLite journal keeps."""

from __future__ import annotations

import pytest
from asyncfix.errors import DuplicateSeqNoError
from asyncfix.journaler import Journaler
from asyncfix.message import MessageDirection

from tradeops.brokers.memjournal import MemoryJournaler

IN, OUT = MessageDirection.INBOUND, MessageDirection.OUTBOUND


def _msg(seq: int, text: str = "x") -> bytes:
    return f"8=FIX.4.4\x019=20\x0135=D\x0134={seq}\x0158={text}\x0110=000\x01".encode()


def _exercise(journal: Journaler) -> list[object]:
    """The same operations on a journal; everything it answers, in order."""
    session = journal.create_or_load("SIM", "ACC1")
    seen: list[object] = []
    for seq in (1, 2, 3, 5):
        journal.persist_msg(_msg(seq), session, OUT)
    for seq in (1, 2):
        journal.persist_msg(_msg(seq, "in"), session, IN)
    seen.append(journal.recover_messages(session, OUT, 2, 5))
    seen.append(journal.recover_msg(session, OUT, 4))
    seen.append(journal.recover_messages(session, IN, 1, 99))
    with pytest.raises(DuplicateSeqNoError):
        journal.persist_msg(_msg(3), session, OUT)
    journal.set_seq_num(session, next_num_out=3, next_num_in=2)
    seen.append((session.next_num_out, session.next_num_in))
    seen.append(journal.recover_messages(session, OUT, 1, 99))
    seen.append(journal.recover_messages(session, IN, 1, 99))
    journal.persist_msg(_msg(3, "again"), session, OUT)
    seen.append(journal.recover_messages(session, OUT, 3, 3))
    seen.append([(s, m, d) for s, m, d, _k in journal.get_all_msgs(direction=OUT)])
    journal.conn.commit()
    return seen


def test_the_memory_journal_answers_as_the_sqlite_one() -> None:
    assert _exercise(MemoryJournaler()) == _exercise(Journaler(None))
