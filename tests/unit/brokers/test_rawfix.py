"""The raw peer's own encoder and parser, checked against published values, not against asyncfix."""

from __future__ import annotations

import pytest

from tests.unit.brokers.rawfix import SOH, FrameError, build_frame, checksum, split_frames

# The ExecutionReport example of the FIX protocol article on Wikipedia, with its published
# BodyLength (178) and CheckSum (128).
WIKIPEDIA = (
    b"8=FIX.4.2|9=178|35=8|49=PHLX|56=PERS|52=20071123-05:30:00.000|11=ATOMNOCCC9990900|"
    b"20=3|150=E|39=E|55=MSFT|167=CS|54=1|38=15|40=2|44=15|58=PHLX EQUITY TESTING|59=0|"
    b"47=C|32=0|31=0|151=15|14=0|6=0|"
).replace(b"|", SOH)


def test_checksum_and_body_length_match_a_published_example():
    body = WIKIPEDIA[WIKIPEDIA.index(b"35=") :]
    assert len(body) == 178
    assert checksum(WIKIPEDIA) == 128


def test_built_frame_has_the_header_order_and_the_trailer_fix_requires():
    frame = build_frame("D", [(11, "c1"), (55, "ESZ5")], seq=7, sending_time="20250101-00:00:00")
    text = frame.decode()
    assert text.startswith("8=FIX.4.4\x019=")
    fields = text.split("\x01")
    assert fields[-1] == ""
    assert [f.split("=")[0] for f in fields[:-1]] == [
        "8", "9", "35", "49", "56", "34", "52", "11", "55", "10",
    ]  # fmt: skip
    body = frame[frame.index(b"35=") : frame.index(b"10=")]
    assert fields[1] == f"9={len(body)}"
    assert fields[-2] == f"10={sum(frame[: frame.index(b'10=')]) % 256:03d}"


def test_split_frames_parses_back_to_back_frames_and_keeps_a_partial_one():
    a = build_frame("0", seq=1)
    b = build_frame("8", [(17, "E1"), (58, "a=b")], seq=2)
    frames, rest = split_frames(a + b + b[:10])
    assert [f.msg_type for f in frames] == ["0", "8"]
    assert frames[1].get("58") == "a=b"
    assert frames[1].seq == 2
    assert rest == b[:10]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (build_frame("0", check=0), "CheckSum"),
        (build_frame("0", body_length=5), "BodyLength"),
        (build_frame("0").replace(b"8=FIX.4.4", b"8=FIX.4.2"), "8=FIX.4.4"),
    ],
    ids=["checksum", "body-length", "begin-string"],  # the frames hold the time: stable ids
)
def test_split_frames_rejects_bad_frames(frame, message):
    with pytest.raises(FrameError, match=message):
        split_frames(frame + b"8=FIX.4.4\x019=1000\x01")


def test_a_read_that_ends_inside_the_beginstring_waits_for_more():
    frame = build_frame("0", seq=3)
    for end in range(1, len(frame)):
        frames, rest = split_frames(frame[:end])
        assert (frames, rest) == ([], frame[:end])
    frames, rest = split_frames(frame + frame[:9])
    assert (len(frames), rest) == (1, frame[:9])
