"""Fuzz: the Unix socket path and the TCP path never raise anything but a refusal.

Three properties, each over more than 100,000 generated inputs (counted and
asserted), reproducible (derandomized) and in batches: hypothesis draws valid
requests, a seed and some arbitrary JSON and bytes per example, and each
example derives a few hundred inputs from them (``protokit.mutate``: valid
JSON with wrong types, keys and values, JSON traps, byte flips, truncations,
oversized frames, random bytes).

* ``parse_request`` (Unix socket): only ``ProtocolError`` is raised, with a
  code the parser may give; where a mutation's outcome is certain, exactly
  that code (or acceptance); every accepted request re-encodes to itself;
  every refusal can be sent back and read by a client.
* ``verify`` (TCP): the same, plus: a correctly signed payload gets the same
  answer as ``parse_request`` gives it (``replayed`` if its nonce was
  accepted before); a frame changed by one byte, or signed with anything but
  the agent's key, is accepted only if it carries a payload the key signed;
  a refused frame leaves the nonce cache and the keys as they were; no
  refusal shows a key.
* ``FrameReader`` fed a stream cut at random: the same frames and oversized
  reports as a line-by-line model of the stream, memory below the limit after
  every feed, and each frame parsed as above.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.agent.protokit import (
    KEY,
    KEY_ID,
    NOW,
    OTHER_KEY,
    VALID,
    WEIRD,
    WINDOW,
    Expect,
    frame,
    json_values,
    key_leaks,
    mutate,
    valid_request_dicts,
)
from tradeops.agent.auth import KEY_ID_RE, KeyRing, NonceCache, sign, verify
from tradeops.agent.protocol import (
    MAX_FRAME,
    ErrorCode,
    ErrorInfo,
    FrameReader,
    ProtocolError,
    Request,
    encode_request,
    encode_response,
    parse_request,
    parse_response,
    refusal,
)

pytestmark = pytest.mark.volume  # run once, not again on the newest core

INPUTS = 100_000  # per entry point, at least
EXAMPLES = 200
BATCH = 560  # inputs derived per example: 200 x 560 = 112,000
PARSE_CODES = frozenset(
    {
        ErrorCode.MALFORMED,
        ErrorCode.OVERSIZED,
        ErrorCode.UNSUPPORTED_VERSION,
        ErrorCode.UNKNOWN_COMMAND,
        ErrorCode.BAD_ARGS,
        ErrorCode.EXPIRED,
    }
)
VERIFY_CODES = PARSE_CODES | {ErrorCode.UNAUTHENTICATED, ErrorCode.REPLAYED, ErrorCode.REFUSED}
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
EXAMPLE = {
    "bases": st.lists(valid_request_dicts(), min_size=1, max_size=3),
    "seed": st.integers(0, 2**32 - 1),
    "values": st.lists(json_values, max_size=3),
    "blobs": st.lists(st.binary(max_size=300), max_size=3),
}


def _outcome(data: bytes) -> Request | ProtocolError:
    try:
        return parse_request(data, NOW, WINDOW)
    except ProtocolError as exc:
        return exc


def _check_refusal(error: ProtocolError, codes: frozenset[ErrorCode]) -> None:
    assert error.code in codes, error
    response = parse_response(encode_response(refusal(error)))  # it can always be answered
    assert response.error == ErrorInfo(error.code, error.text)
    assert not key_leaks(error.text)
    assert not key_leaks(repr(error))


def _check_accepted(request: Request) -> None:
    again = encode_request(
        request.cmd,
        request.args,
        who=request.who,
        reason=request.reason,
        request_id=request.id,
        ts=request.ts,
        nonce=request.nonce,
        v=request.v,
    )
    assert parse_request(again, NOW, WINDOW) == request


def _check_expect(result: Request | ProtocolError, expect: Expect, data: bytes) -> None:
    if expect == VALID:
        assert isinstance(result, Request), (data, result)
    elif expect is not None:
        assert isinstance(result, ProtocolError), (data, expect)
        assert result.code == expect, (data, result)


# ------------------------------------------------------------ the Unix socket
def test_parse_request_refuses_every_malformed_input_with_a_known_code() -> None:
    counts = {"inputs": 0, "refused": 0, "certain": 0}

    @FUZZ
    @given(**EXAMPLE)
    def run(bases: list[dict[str, Any]], seed: int, values: list[Any], blobs: list[bytes]) -> None:
        r = random.Random(seed)
        inputs: list[tuple[bytes, Expect]] = [(frame(obj), VALID) for obj in bases]
        for value in values:  # arbitrary JSON, alone and in each field
            inputs.append((frame(value), None))
            inputs.extend((frame({**bases[0], key: value}), None) for key in bases[0])
        inputs.extend((blob, None) for blob in blobs)
        inputs.extend(mutate(r, r.choice(bases)) for _unused in range(BATCH))
        for data, expect in inputs:
            result = _outcome(data)  # anything but ProtocolError propagates and fails
            _check_expect(result, expect, data)
            if isinstance(result, ProtocolError):
                _check_refusal(result, PARSE_CODES)
                counts["refused"] += 1
            else:
                _check_accepted(result)
            counts["inputs"] += 1
            counts["certain"] += expect is not None

    run()
    print(counts)  # shown with pytest -s
    assert counts["inputs"] >= INPUTS
    assert counts["refused"] >= INPUTS
    assert counts["certain"] >= counts["inputs"] // 2  # most outcomes were predicted exactly


# ------------------------------------------------------------------ TCP
def _raw_signed(payload: bytes, key_id: str, key: bytes) -> bytes:
    """A signed frame built by hand: for payloads ``sign`` refuses (too big, not UTF-8)."""
    text = payload.decode("utf-8", "surrogateescape")
    mac = hmac.new(key, payload, hashlib.sha256).hexdigest()
    envelope = {"v": 1, "key_id": key_id, "payload": text, "mac": mac}
    return json.dumps(envelope, separators=(",", ":")).encode("ascii") + b"\n"


def _signed_any(payload: bytes, key_id: str, key: bytes) -> bytes:
    try:
        return sign(payload, key_id, key)
    except ProtocolError:
        return _raw_signed(payload.rstrip(b"\n") if payload.count(b"\n") == 1 else payload,
                           key_id, key)  # fmt: skip


def _envelope_mutation(
    r: random.Random, signed: dict[str, Any], other_payload: str
) -> tuple[bytes, Expect]:
    """One change to a valid signed frame's envelope, with its certain outcome."""
    out = dict(signed)
    kind = r.randrange(9)
    if kind == 0:
        out["key_id"] = r.choice(["nobody", "ctl2", "CTL", "o.l.d"])
        return frame(out), ErrorCode.UNAUTHENTICATED
    if kind == 1:
        out["key_id"] = "old" if signed["key_id"] == KEY_ID else KEY_ID  # the other key's id
        return frame(out), ErrorCode.UNAUTHENTICATED
    if kind == 2:
        out["payload"] = other_payload  # another request under this MAC
        same = other_payload == signed["payload"]
        return frame(out), None if same else ErrorCode.UNAUTHENTICATED
    if kind == 3:
        i = r.randrange(64)
        digit = r.choice([c for c in "0123456789abcdef" if c != signed["mac"][i]])
        out["mac"] = signed["mac"][:i] + digit + signed["mac"][i + 1 :]
        return frame(out), ErrorCode.UNAUTHENTICATED
    if kind == 4:
        out["mac"] = r.choice([signed["mac"].upper(), signed["mac"][:-1], signed["mac"] + "0"])
        return frame(out), ErrorCode.MALFORMED if out["mac"] != signed["mac"] else None
    if kind == 5:
        out["v"] = r.choice([0, 2, 7, -1])
        return frame(out), ErrorCode.UNSUPPORTED_VERSION
    if kind == 6:
        out["v"] = r.choice(["1", True, 1.0, None])
        return frame(out), ErrorCode.MALFORMED
    if kind == 7:
        if r.random() < 0.5:
            del out[r.choice(list(out))]
        else:
            out[r.choice(["alg", "ts", "Mac", ""])] = r.choice(WEIRD)
        return frame(out), ErrorCode.MALFORMED
    key = r.choice(["key_id", "payload", "mac"])
    value = r.choice(WEIRD)
    out[key] = value
    if key == "key_id" and isinstance(value, str) and KEY_ID_RE.fullmatch(value):
        return frame(out), ErrorCode.UNAUTHENTICATED  # a well-formed id the agent lacks
    if key == "payload" and isinstance(value, str) and value != "\ud800":
        return frame(out), ErrorCode.UNAUTHENTICATED  # a string the MAC does not cover
    return frame(out), ErrorCode.MALFORMED


def _byte_mutation(r: random.Random, data: bytes) -> bytes:
    body = bytearray(data[:-1])
    kind = r.randrange(4)
    i = r.randrange(len(body))
    if kind == 0:
        body[i] ^= 1 << r.randrange(8)
    elif kind == 1:
        body[i : i + 1] = b""
    elif kind == 2:
        body[i:i] = bytes([r.choice([r.randrange(256), 0x20, 0x5C, 0x22])])
    else:
        return bytes(body[:i])
    return bytes(body) + (b"\n" if r.random() < 0.5 else b"")


def test_verify_refuses_every_forged_altered_or_replayed_frame() -> None:
    counts = {"inputs": 0, "refused": 0, "certain": 0, "accepted": 0}

    @FUZZ
    @given(**EXAMPLE)
    def run(bases: list[dict[str, Any]], seed: int, values: list[Any], blobs: list[bytes]) -> None:
        r = random.Random(seed)
        keys = KeyRing({KEY_ID: KEY, "old": OTHER_KEY})
        before_keys = dict(keys)
        cache = NonceCache()
        signed_payloads: set[bytes] = set()  # what the agent's keys really signed
        accepted: list[bytes] = []

        def check(data: bytes, expect: Expect, now: float = NOW) -> None:
            size = len(cache)
            try:
                request = verify(data, keys, now, WINDOW, nonces=cache)
            except ProtocolError as exc:
                assert len(cache) == size  # a refused frame changes nothing
                _check_expect(exc, expect, data)
                _check_refusal(exc, VERIFY_CODES)
                counts["refused"] += 1
            else:
                _check_expect(request, expect, data)
                payload = json.loads(data)["payload"].encode("utf-8")
                assert payload in signed_payloads, data  # never a forgery
                assert _outcome(payload) == request
                assert len(cache) == size + 1
                assert request.nonce in cache
                _check_accepted(request)
                accepted.append(data)
                counts["accepted"] += 1
            counts["inputs"] += 1
            counts["certain"] += expect is not None

        def signed_by_the_agent(payload: bytes) -> tuple[bytes, Expect]:
            key_id, key = r.choice([(KEY_ID, KEY), ("old", OTHER_KEY)])
            data = _signed_any(payload, key_id, key)
            body = payload[:-1] if payload.endswith(b"\n") else payload
            signed_payloads.add(body)
            if len(data.rstrip(b"\n")) >= MAX_FRAME:
                return data, ErrorCode.OVERSIZED
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                return data, ErrorCode.MALFORMED
            result = _outcome(body)
            if isinstance(result, ProtocolError):
                return data, result.code  # the agent's answer is the parser's
            return data, ErrorCode.REPLAYED if result.nonce in cache else VALID

        for obj in bases:
            check(*signed_by_the_agent(frame(obj)))
        for value in values:
            check(frame(value), None)
            check(frame({"v": 1, "key_id": KEY_ID, "payload": value, "mac": "0" * 64}), None)
        for blob in blobs:
            check(blob, None)
        for _unused in range(BATCH):
            base = r.choice(bases)
            choice = r.random()
            if choice < 0.3:  # correctly signed, the payload mutated
                payload, _unused = mutate(r, base)
                check(*signed_by_the_agent(payload))
            elif choice < 0.55:  # a valid signed frame with one byte changed
                data = sign(frame(base), KEY_ID, KEY)
                signed_payloads.add(frame(base)[:-1])
                check(_byte_mutation(r, data), None)
            elif choice < 0.8:  # a valid signed frame with its envelope changed
                signed = json.loads(sign(frame(base), KEY_ID, KEY))
                signed_payloads.add(frame(base)[:-1])
                other = frame(r.choice(bases))[:-1].decode("utf-8")
                check(*_envelope_mutation(r, signed, other))
            elif choice < 0.9 and accepted:  # a replay, in and after the window
                if r.random() < 0.7:
                    check(r.choice(accepted), ErrorCode.REPLAYED)
                else:
                    check(r.choice(accepted), ErrorCode.EXPIRED, now=NOW + 2 * WINDOW + 1)
            else:  # forged: signed with a key the agent does not have, or no MAC at all
                payload = frame(base)
                forged = r.choice([b"K" * 32, KEY + b"x", KEY[:-1], OTHER_KEY[::-1]])
                if r.random() < 0.5:
                    check(_signed_any(payload, r.choice([KEY_ID, "old"]), forged),
                          ErrorCode.UNAUTHENTICATED)  # fmt: skip
                else:
                    check(r.randbytes(r.randrange(300)), None)
        assert dict(keys) == before_keys

    run()
    print(counts)  # shown with pytest -s
    assert counts["inputs"] >= INPUTS
    assert counts["refused"] >= INPUTS
    assert counts["accepted"] > 0  # the oracle saw both outcomes
    assert counts["certain"] >= counts["inputs"] // 2


# ---------------------------------------------------------------- framing
def _model(stream: bytes, max_frame: int) -> tuple[list[bytes | str], int]:
    """What a line reader must return for ``stream``, and what it keeps."""
    *lines, tail = stream.split(b"\n")
    out: list[bytes | str] = [line if len(line) < max_frame else "oversized" for line in lines]
    if len(tail) >= max_frame:
        out.append("oversized")
        return out, 0
    return out, len(tail)


def _line(r: random.Random, bases: list[dict[str, Any]], max_frame: int) -> bytes:
    kind = r.random()
    if kind < 0.3:
        return frame(r.choice(bases))[:-1]
    if kind < 0.65:
        return mutate(r, r.choice(bases))[0]  # may hold newlines of its own
    if kind < 0.8:
        return r.randbytes(r.randrange(64)).replace(b"\n", b"")
    if kind < 0.9:
        return b"x" * max(0, max_frame + r.randrange(-2, 2))  # at the limit
    if kind < 0.95:
        return b"y" * r.randrange(max_frame, 3 * max_frame + 1)
    return b""


def test_the_frame_reader_matches_a_line_model_with_bounded_memory() -> None:
    counts = {"chunks": 0, "frames": 0}

    @FUZZ
    @given(
        bases=st.lists(valid_request_dicts(), min_size=1, max_size=3),
        seed=st.integers(0, 2**32 - 1),
        max_frame=st.sampled_from([2, 3, 17, 256, MAX_FRAME, MAX_FRAME, MAX_FRAME]),
    )
    def run(bases: list[dict[str, Any]], seed: int, max_frame: int) -> None:
        r = random.Random(seed)
        sizes = []
        for _unused in range(BATCH):
            kind = r.random()
            top = 64 if kind < 0.7 else 1024 if kind < 0.97 else 3 * MAX_FRAME
            sizes.append(r.randrange(1, top + 1))
        parts: list[bytes] = []
        length = 0
        while length < sum(sizes):
            parts.append(_line(r, bases, max_frame))
            length += len(parts[-1]) + 1
        stream = b"\n".join(parts)[: sum(sizes)]
        reader = FrameReader(max_frame)
        got: list[bytes | str] = []
        start = 0
        for size in sizes:
            for item in reader.feed(stream[start : start + size]):
                if isinstance(item, ProtocolError):
                    assert item.code is ErrorCode.OVERSIZED
                    got.append("oversized")
                    continue
                assert b"\n" not in item
                assert len(item) < max_frame
                got.append(item)
                if max_frame == MAX_FRAME:  # the Unix socket path: reader, then parser
                    result = _outcome(item)
                    if isinstance(result, ProtocolError):
                        _check_refusal(result, PARSE_CODES)
                    counts["frames"] += 1
            assert reader.pending < max_frame  # bounded after every feed
            start += size
            counts["chunks"] += 1
        expected, pending = _model(stream, max_frame)
        assert got == expected
        assert reader.pending == pending
        cut = reader.finish()
        assert (cut is not None) == (pending > 0)

    run()
    print(counts)  # shown with pytest -s
    assert counts["chunks"] >= INPUTS
    assert counts["frames"] > 0
