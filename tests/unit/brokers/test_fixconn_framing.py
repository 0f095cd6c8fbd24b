"""``fixframing.cut_frame`` and ``fixheader``'s checks, as pure functions on hand-built bytes."""

from __future__ import annotations

import pytest

from tests.unit.brokers.rawfix import build_frame
from tests.unit.brokers.sessionkit import GARBLED_CASES, raw_frame
from tradeops.brokers.fixframing import (
    DEFAULT_MAX_FRAME_BYTES,
    CutKind,
    GarbleReason,
    cut_frame,
    excerpt,
)
from tradeops.brokers.fixheader import header_fault, parse_header

GOOD = build_frame("1", [(112, "probe")], seq=7)


def test_a_valid_frame_is_cut_whole_and_every_prefix_waits_for_more():
    cut = cut_frame(GOOD + GOOD[:5])
    assert (cut.kind, cut.size) == (CutKind.FRAME, len(GOOD))
    for end in range(1, len(GOOD)):
        assert cut_frame(GOOD[:end]).kind is CutKind.NEED_MORE, GOOD[:end]


@pytest.mark.parametrize("case", list(GARBLED_CASES))
def test_a_garbled_frame_is_discarded_up_to_the_next_frame(case):
    build, reason = GARBLED_CASES[case]
    garbled = build(7, "VENUE", "TRADER")
    buffer = garbled + GOOD
    first = cut_frame(buffer)
    assert (first.kind, first.reason, first.size) == (CutKind.GARBLED, reason, len(garbled))
    second = cut_frame(buffer[first.size :])
    assert (second.kind, second.size) == (CutKind.FRAME, len(GOOD))


def test_garbage_keeps_a_possible_frame_start_at_its_end():
    cut = cut_frame(b"noise8=FIX.4")
    assert (cut.kind, cut.reason, cut.size) == (CutKind.GARBLED, GarbleReason.GARBAGE, 5)
    assert cut_frame(b"8=FIX.4").kind is CutKind.NEED_MORE
    assert cut_frame(b"8=FIXT.1.1\x019").kind is CutKind.NEED_MORE
    assert cut_frame(b"8=FIX.4.4\x01X").kind is CutKind.GARBLED


def test_a_bodylength_in_progress_waits_but_not_forever():
    assert cut_frame(b"8=FIX.4.4\x019=12").kind is CutKind.NEED_MORE
    assert cut_frame(b"8=FIX.4.4\x019=123456789").kind is CutKind.NEED_MORE
    cut = cut_frame(b"8=FIX.4.4\x019=1234567890")
    assert (cut.kind, cut.reason) == (CutKind.GARBLED, GarbleReason.BODY_LENGTH_INVALID)


def test_the_frame_size_limit_is_inclusive():
    assert cut_frame(GOOD, max_frame=len(GOOD)).kind is CutKind.FRAME
    cut = cut_frame(GOOD, max_frame=len(GOOD) - 1)
    assert (cut.kind, cut.reason, cut.size) == (
        CutKind.GARBLED,
        GarbleReason.FRAME_TOO_LARGE,
        len(GOOD),
    )
    assert DEFAULT_MAX_FRAME_BYTES == 1 << 20


def test_a_frame_cut_short_by_the_next_one_waits_for_nothing():
    # The stated end lies beyond the bytes received, but another frame has begun: the
    # first is discarded now, not when enough bytes have arrived to fill its length.
    cut = cut_frame(GOOD[:30] + GOOD)
    assert (cut.kind, cut.reason, cut.size) == (CutKind.GARBLED, GarbleReason.TRUNCATED, 30)


def test_excerpt_is_short_printable_and_hides_passwords():
    logon = build_frame("A", [(98, 0), (108, 30), (553, "u"), (554, "s3cret")], seq=1)
    text = excerpt(logon, limit=400)
    assert "s3cret" not in text
    assert "|554=***|" in text
    assert text.startswith("8=FIX.4.4|9=")
    assert excerpt(b"\x00\xff" * 100) == "\\x00\\xff" * 32 + "..."


def test_header_is_read_without_asyncfix():
    header = parse_header(build_frame("D", [(11, "c1")], seq=12, header=[(43, "Y")]))
    assert (header.msg_type, header.seq_num, header.poss_dup) == ("D", 12, True)
    assert parse_header(build_frame("D", seq="1x")).seq_num is None
    assert parse_header(build_frame("D", seq=0)).seq_num is None
    assert parse_header(build_frame("D", seq=None)).seq_num is None


@pytest.mark.parametrize(
    ("frame", "reason", "tag"),
    [
        (build_frame("D", sender="OTHER"), 9, "49"),
        (build_frame("D", target="OTHER"), 9, "56"),
        (build_frame("D", sending_time="2025-01-02T03:04:05"), 6, "52"),
        (build_frame("D", header=[(43, "Y")]), 1, "122"),
        (
            raw_frame(["35=0", "49=VENUE", "56=TRADER", "34=1", "52=20250102-03:04:05", "x=1"]),
            0,
            None,
        ),
    ],
    ids=["sender", "target", "sending-time", "poss-dup", "bad-tag"],  # stable ids for xdist
)
def test_header_faults_carry_the_fix_reject_reason(frame, reason, tag):
    fault = header_fault(parse_header(frame), "VENUE", "TRADER")
    assert fault is not None
    assert (fault.reason, fault.tag) == (reason, tag)
    assert (fault.logout_text is not None) == (reason == 9)


def test_a_possdup_gap_fill_needs_no_origsendingtime():
    frame = build_frame("4", [(123, "Y"), (36, 9)], header=[(43, "Y")])
    assert header_fault(parse_header(frame), "VENUE", "TRADER") is None
