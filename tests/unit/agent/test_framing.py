"""FrameReader: frames cut at newlines, oversized lines reported and skipped, memory bounded."""

from __future__ import annotations

import pytest

from tests.unit.agent.protokit import NOW, frame, request_dict
from tradeops.agent.protocol import MAX_FRAME, ErrorCode, FrameReader, ProtocolError, parse_request


def _kinds(items: list[bytes | ProtocolError]) -> list[bytes | str]:
    return [item.code.value if isinstance(item, ProtocolError) else item for item in items]


def test_frames_come_out_whole_however_the_stream_is_cut() -> None:
    stream = frame(request_dict("halt")) + frame(request_dict("status")) + b"x\n\n"
    whole = FrameReader().feed(stream)
    reader = FrameReader()
    byte_by_byte = [item for i in range(len(stream)) for item in reader.feed(stream[i : i + 1])]
    assert _kinds(whole) == _kinds(byte_by_byte)
    assert _kinds(whole) == [frame(request_dict("halt"))[:-1], frame(request_dict("status"))[:-1],
                             b"x", b""]  # fmt: skip
    first = whole[0]
    assert isinstance(first, bytes)
    assert parse_request(first, NOW).cmd == "halt"


def test_a_line_of_max_frame_bytes_with_its_newline_fits_one_more_does_not() -> None:
    reader = FrameReader(16)
    assert _kinds(reader.feed(b"a" * 15 + b"\n")) == [b"a" * 15]
    assert _kinds(reader.feed(b"b" * 16 + b"\n")) == ["oversized"]
    assert _kinds(reader.feed(b"c\n")) == [b"c"]  # the next frame is read as usual


def test_an_oversized_line_is_reported_before_its_newline_and_never_buffered() -> None:
    reader = FrameReader()
    chunk = b"z" * 1024
    reported: list[bytes | ProtocolError] = []
    for _unused in range(1024):  # a 1 MiB line, fed as a peer would send it
        reported += reader.feed(chunk)
        assert reader.pending < MAX_FRAME
    assert _kinds(reported) == ["oversized"]  # once, as soon as it was too long
    assert reader.skipping
    assert reader.pending == 0
    assert _kinds(reader.feed(b"tail\nnext\n")) == [b"next"]
    assert not reader.skipping


def test_an_oversized_error_says_the_limit_and_that_the_line_was_skipped() -> None:
    (error,) = FrameReader(10).feed(b"x" * 20)
    assert isinstance(error, ProtocolError)
    assert error.code is ErrorCode.OVERSIZED
    assert "10 bytes" in error.text
    assert "skipped" in error.text


def test_a_stream_that_ends_mid_frame_is_reported_once() -> None:
    reader = FrameReader()
    assert reader.feed(b'{"v":1') == []
    assert reader.pending == 6
    error = reader.finish()
    assert error is not None
    assert error.code is ErrorCode.MALFORMED
    assert reader.finish() is None
    assert FrameReader().finish() is None


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_any_bytes_like_input_is_read(kind: type) -> None:
    data = kind(b"ab\ncd")
    reader = FrameReader()
    assert reader.feed(data) == [b"ab"]
    assert reader.feed(memoryview(b"xx\nef\n")[2:]) == [b"cd", b"ef"]


def test_the_limit_must_leave_room_for_a_byte_and_the_newline() -> None:
    with pytest.raises(ValueError, match="room"):
        FrameReader(1)
    assert _kinds(FrameReader(2).feed(b"a\nbb\n\n")) == [b"a", "oversized", b""]
