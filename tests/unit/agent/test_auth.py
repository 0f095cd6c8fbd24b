"""HMAC-signed frames, the replay cache, key files and the Unix socket's peer check.

Every refusal is checked for its code and for not carrying the key: its text,
its str and its repr, and the repr of every object that holds a key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.ci import unavailable
from tests.unit.agent.protokit import (
    KEY,
    KEY_ID,
    NOW,
    OTHER_KEY,
    WINDOW,
    frame,
    key_leaks,
    request_dict,
)
from tradeops.agent.auth import (
    KEY_BYTES,
    MAX_KEY_FILE,
    KeyFileError,
    KeyRing,
    NonceCache,
    SigningKey,
    generate_key,
    load_key,
    peer_allowed,
    peer_credentials,
    peer_may_connect,
    peer_roles,
    sign,
    verify,
)
from tradeops.agent.protocol import (
    MAX_FRAME,
    Command,
    ErrorCode,
    ProtocolError,
    encode_request,
    encode_response,
    refusal,
)

KEYS = KeyRing({KEY_ID: KEY})


def _signed(obj: dict[str, Any] | None = None, key: bytes = KEY, key_id: str = KEY_ID) -> bytes:
    return sign(frame(obj or request_dict()), key_id, key)


def _envelope(data: bytes) -> dict[str, Any]:
    return json.loads(data)


def _refused(
    data: bytes, cache: NonceCache | None = None, now: float = NOW, keys: Any = KEYS
) -> ProtocolError:
    cache = cache if cache is not None else NonceCache()
    before = len(cache)
    with pytest.raises(ProtocolError) as info:
        verify(data, keys, now, nonces=cache)
    error = info.value
    assert len(cache) == before  # a refused frame is never remembered
    for text in (error.text, str(error), repr(error), encode_response(refusal(error))):
        assert not key_leaks(text)
    return error


# ----------------------------------------------------------------- happy path
def test_a_signed_request_is_verified_and_its_nonce_remembered() -> None:
    data = encode_request("halt", who="controller", reason="fleet kill", ts=NOW)
    cache = NonceCache()
    request = verify(sign(data, KEY_ID, KEY), KEYS, NOW + 1, nonces=cache)
    assert request.cmd is Command.HALT
    assert request.who == "controller"
    assert request.nonce in cache
    assert len(cache) == 1


def test_the_mac_is_hmac_sha256_over_the_request_line() -> None:
    data = frame(request_dict())
    envelope = _envelope(_signed())
    assert envelope["payload"].encode() + b"\n" == data
    assert envelope["mac"] == hmac.new(KEY, data[:-1], hashlib.sha256).hexdigest()
    assert set(envelope) == {"v", "key_id", "payload", "mac"}


def test_a_keyring_with_several_keys_verifies_each_by_its_id() -> None:
    keys = KeyRing({"old": OTHER_KEY, "new": KEY})
    cache = NonceCache()
    assert verify(_signed(key=OTHER_KEY, key_id="old"), keys, NOW, nonces=cache).id == "req-1"
    other = request_dict(nonce="1" * 32)
    assert verify(_signed(other, key=KEY, key_id="new"), keys, NOW, nonces=cache).id == "req-1"


def test_a_signing_key_signs_like_sign() -> None:
    data = frame(request_dict())
    assert SigningKey(KEY_ID, KEY).sign(data) == sign(data, KEY_ID, KEY)


# ------------------------------------------------------------------- refusals
def test_a_wrong_key_is_unauthenticated() -> None:
    error = _refused(_signed(key=OTHER_KEY))
    assert error.code is ErrorCode.UNAUTHENTICATED
    assert "MAC" in error.text


def test_an_unknown_key_id_is_unauthenticated_and_not_repeated() -> None:
    error = _refused(_signed(key_id="intruder-7"))
    assert error.code is ErrorCode.UNAUTHENTICATED
    assert "intruder-7" not in error.text
    assert error.request_id is None  # nothing of an unauthenticated frame is trusted


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: p.replace('"cmd":"halt"', '"cmd":"reset"'),
        lambda p: p.replace('"who":"alice"', '"who":"mallory"'),
        lambda p: p.replace("1700000000.0", "1700000001.0"),
        lambda p: p + " ",  # even a blank the JSON would ignore
    ],
    ids=["cmd", "who", "ts", "a trailing blank"],
)
def test_a_tampered_payload_is_unauthenticated(tamper: Any) -> None:
    envelope = _envelope(_signed())
    envelope["payload"] = tamper(envelope["payload"])
    error = _refused(frame(envelope))
    assert error.code is ErrorCode.UNAUTHENTICATED
    assert "mallory" not in error.text


def test_a_tampered_mac_is_unauthenticated() -> None:
    envelope = _envelope(_signed())
    envelope["mac"] = ("0" if envelope["mac"][0] != "0" else "1") + envelope["mac"][1:]
    assert _refused(frame(envelope)).code is ErrorCode.UNAUTHENTICATED


def test_a_replayed_frame_is_refused_and_changes_nothing() -> None:
    cache = NonceCache()
    data = _signed()
    first = verify(data, KEYS, NOW, nonces=cache)
    for now in (NOW, NOW + 3, NOW + WINDOW):
        error = _refused(data, cache, now=now)
        assert error.code is ErrorCode.REPLAYED
        assert error.request_id == first.id  # authenticated: the id can be answered
    # Another request reusing the nonce (signed by the key holder) is a replay too.
    again = _signed(request_dict("status", id="req-2"))
    assert _refused(again, cache).code is ErrorCode.REPLAYED


def test_a_replay_after_the_window_is_expired_and_the_nonce_forgotten() -> None:
    cache = NonceCache()
    data = _signed(request_dict(ts=NOW))
    verify(data, KEYS, NOW, nonces=cache)
    assert _refused(data, cache, now=NOW + WINDOW + 0.001).code is ErrorCode.EXPIRED
    # The next accepted request prunes the nonce: its request can only ever be expired now.
    verify(_signed(request_dict(ts=NOW + 10, nonce="2" * 32)), KEYS, NOW + 10, nonces=cache)
    assert "0123456789abcdef0123456789abcdef" not in cache
    assert len(cache) == 1


@pytest.mark.parametrize("skew", [-WINDOW - 0.01, WINDOW + 0.01, -3600.0, 86400.0])
def test_an_old_or_future_timestamp_is_expired(skew: float) -> None:
    error = _refused(_signed(request_dict(ts=NOW + skew)))
    assert error.code is ErrorCode.EXPIRED


def test_checks_run_in_order_size_shape_key_mac_payload_time_nonce() -> None:
    bad_payload = frame(request_dict(who=""))[:-1].decode()
    stale = request_dict(ts=NOW - 60)
    # Oversized beats everything, even a frame that is not JSON.
    assert _refused(b"x" * MAX_FRAME).code is ErrorCode.OVERSIZED
    # The shape beats the key: an unknown key id in a frame without a mac.
    shape = {"v": 1, "key_id": "nobody", "payload": "{}"}
    assert _refused(frame(shape)).code is ErrorCode.MALFORMED
    # The key beats the MAC, the MAC beats the payload: a bad payload with a bad MAC.
    envelope = {"v": 1, "key_id": KEY_ID, "payload": bad_payload, "mac": "0" * 64}
    assert _refused(frame(envelope)).code is ErrorCode.UNAUTHENTICATED
    assert _refused(frame({**envelope, "key_id": "x"})).code is ErrorCode.UNAUTHENTICATED
    # Once authenticated, the payload is parsed (bad_args), then its time checked.
    assert _refused(sign(bad_payload.encode(), KEY_ID, KEY)).code is ErrorCode.BAD_ARGS
    assert _refused(_signed(stale)).code is ErrorCode.EXPIRED
    # An expired replay is expired: the time is checked before the nonce.
    cache = NonceCache()
    verify(_signed(), KEYS, NOW, nonces=cache)
    assert _refused(_signed(), cache, now=NOW + 60).code is ErrorCode.EXPIRED


BAD_ENVELOPES = {
    "not JSON": (b"hello", ErrorCode.MALFORMED),
    "a list": (b"[]", ErrorCode.MALFORMED),
    "no mac": ({"v": 1, "key_id": KEY_ID, "payload": "{}"}, ErrorCode.MALFORMED),
    "an extra key": (
        {"v": 1, "key_id": KEY_ID, "payload": "{}", "mac": "0" * 64, "x": 1},
        ErrorCode.MALFORMED,
    ),
    "a newer version": (
        {"v": 2, "key_id": KEY_ID, "payload": "{}", "mac": "0" * 64, "alg": "x"},
        ErrorCode.UNSUPPORTED_VERSION,
    ),
    "no version": ({"key_id": KEY_ID, "payload": "{}", "mac": "0" * 64}, ErrorCode.MALFORMED),
    "mac in upper case": (
        {"v": 1, "key_id": KEY_ID, "payload": "{}", "mac": "A" * 64},
        ErrorCode.MALFORMED,
    ),
    "mac too short": ({"v": 1, "key_id": KEY_ID, "payload": "{}", "mac": "0"}, ErrorCode.MALFORMED),
    "payload an object": (
        {"v": 1, "key_id": KEY_ID, "payload": {}, "mac": "0" * 64},
        ErrorCode.MALFORMED,
    ),
    "payload a lone surrogate": (
        {"v": 1, "key_id": KEY_ID, "payload": "\ud800", "mac": "0" * 64},
        ErrorCode.MALFORMED,
    ),
    "key_id with a slash": (
        {"v": 1, "key_id": "../k", "payload": "{}", "mac": "0" * 64},
        ErrorCode.MALFORMED,
    ),
    "a duplicate key": (
        b'{"v":1,"key_id":"ctl","key_id":"x","payload":"{}","mac":"' + b"0" * 64 + b'"}',
        ErrorCode.MALFORMED,
    ),
}


@pytest.mark.parametrize(("data", "code"), BAD_ENVELOPES.values(), ids=BAD_ENVELOPES.keys())
def test_a_frame_that_is_not_a_signed_frame_is_refused(data: Any, code: ErrorCode) -> None:
    error = _refused(data if isinstance(data, bytes) else frame(data))
    assert error.code is code


def test_a_full_cache_refuses_new_requests_rather_than_forget_a_live_nonce() -> None:
    cache = NonceCache(max_entries=2)
    for nonce in ("a" * 16, "b" * 16):
        verify(_signed(request_dict(nonce=nonce)), KEYS, NOW, nonces=cache)
    error = _refused(_signed(request_dict(nonce="c" * 16)), cache)
    assert error.code is ErrorCode.REFUSED
    assert "retry" in error.text
    assert error.request_id == "req-1"
    assert "a" * 16 in cache
    assert "b" * 16 in cache
    assert "c" * 16 not in cache
    # Once the first two have expired, there is room again.
    later = request_dict(nonce="c" * 16, ts=NOW + 20)
    assert verify(_signed(later), KEYS, NOW + 20, nonces=cache).nonce == "c" * 16
    assert len(cache) == 1


def test_a_nonce_is_kept_by_its_requests_time_not_by_arrival() -> None:
    cache = NonceCache()
    cache.admit("f" * 16, expires_at=100.0, now=0.0)
    cache.admit("e" * 16, expires_at=200.0, now=150.0)  # prunes nothing alive
    assert "f" * 16 not in cache  # 100 < 150: its request is expired, pruned
    with pytest.raises(ProtocolError) as info:
        cache.admit("e" * 16, expires_at=300.0, now=50.0)  # a clock that stepped back
    assert info.value.code is ErrorCode.REPLAYED


# ----------------------------------------------------- the key never shows up
def test_no_refusal_text_or_repr_contains_the_key() -> None:
    # _refused checks each refusal; here the objects that hold a key.
    ring = KeyRing({KEY_ID: KEY, "other": OTHER_KEY})
    signing = SigningKey(KEY_ID, KEY)
    for text in (repr(ring), str(ring), repr(signing), str(signing), repr(NonceCache())):
        assert not key_leaks(text)
    assert KEY_ID in repr(ring)
    assert KEY_ID in repr(signing)
    with pytest.raises(ValueError, match="at least 32 bytes") as info:
        sign(b"{}", KEY_ID, KEY[:31])
    assert not key_leaks(str(info.value))
    with pytest.raises(ValueError, match="key id") as info:
        KeyRing({"bad id": KEY})
    assert not key_leaks(str(info.value))


def test_sign_refuses_a_frame_that_would_not_fit() -> None:
    big = b'{"x":"' + b'"' * 5000 + b'"}'  # quotes double when embedded
    with pytest.raises(ProtocolError) as info:
        sign(big, KEY_ID, KEY)
    assert info.value.code is ErrorCode.OVERSIZED
    with pytest.raises(ProtocolError):
        sign(b"\xff", KEY_ID, KEY)
    with pytest.raises(ProtocolError):
        sign(b"a\nb", KEY_ID, KEY)


# ------------------------------------------------------------------ key files
def _key_file(tmp_path: Path, content: bytes, mode: int = 0o600, name: str = "agent.key") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_a_key_file_of_mode_0600_or_0400_is_loaded(tmp_path: Path, mode: int) -> None:
    path = _key_file(tmp_path, KEY.hex().encode() + b"\n", mode)
    assert load_key(path) == KEY


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o606, 0o700, 0o200, 0o000, 0o4600])
def test_a_key_file_with_another_mode_is_refused(tmp_path: Path, mode: int) -> None:
    path = _key_file(tmp_path, KEY.hex().encode(), mode)
    with pytest.raises(KeyFileError) as info:
        load_key(path)
    text = str(info.value)
    assert str(path) in text
    assert f"chmod 600 {path}" in text
    assert not key_leaks(text)
    if mode & 0o077:
        assert "rotate" in text


def test_a_key_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = _key_file(tmp_path, KEY.hex().encode())
    if os.geteuid() != 0:
        unavailable("giving a file to another uid needs root")
    os.chown(path, 4242, -1)
    with pytest.raises(KeyFileError) as info:
        load_key(path)
    text = str(info.value)
    assert "uid 4242" in text
    assert f"chown {os.geteuid()} {path}" in text
    assert not key_leaks(text)


def test_what_is_not_a_regular_file_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.key"
    os.mkfifo(fifo, 0o600)  # opening it for reading would block without O_NONBLOCK
    directory = tmp_path / "dir.key"
    directory.mkdir(mode=0o700)
    for path in (fifo, directory, Path("/dev/null")):
        with pytest.raises(KeyFileError, match="not a regular file") as info:
            load_key(path)
        assert str(path) in str(info.value)


def test_a_symlink_to_a_good_key_file_is_followed_and_checked(tmp_path: Path) -> None:
    target = _key_file(tmp_path, KEY.hex().encode())
    link = tmp_path / "current.key"
    link.symlink_to(target)
    assert load_key(link) == KEY  # shared/ is linked into releases
    os.chmod(target, 0o644)
    with pytest.raises(KeyFileError, match="0644"):
        load_key(link)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (KEY[:31].hex().encode(), "31 bytes"),
        (b"", "hex digits"),
        (KEY, "hex digits"),  # the raw bytes, not hex
        (KEY.hex().encode()[:-1], "hex digits"),  # an odd number of digits
        (b"0" * (MAX_KEY_FILE + 1), f"larger than {MAX_KEY_FILE}"),
    ],
    ids=["short", "empty", "raw bytes", "odd", "too large"],
)
def test_a_key_file_without_a_usable_key_is_refused_without_showing_it(
    tmp_path: Path, content: bytes, match: str
) -> None:
    path = _key_file(tmp_path, content)
    with pytest.raises(KeyFileError, match=match) as info:
        load_key(path)
    assert not key_leaks(str(info.value))
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


def test_a_missing_key_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot open") as info:
        load_key(tmp_path / "nope.key")
    assert str(tmp_path / "nope.key") in str(info.value)


def test_generate_key_writes_a_fresh_0600_key_that_load_key_reads(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        one = load_key(generate_key(tmp_path / "one.key"))
        os.umask(0o277)  # a umask that would leave 0400: the mode is set, not inherited
        two = load_key(generate_key(tmp_path / "two.key"))
    finally:
        os.umask(old)
    assert len(one) == KEY_BYTES
    assert one != two
    for name in ("one.key", "two.key"):
        path = tmp_path / name
        assert path.stat().st_mode & 0o777 == 0o600
        assert len(path.read_bytes()) == 2 * KEY_BYTES + 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.key", "two.key"]  # no temp file


def test_generate_key_never_overwrites_a_key(tmp_path: Path) -> None:
    path = generate_key(tmp_path / "agent.key")
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="exists") as info:
        generate_key(path)
    assert path.read_bytes() == before
    assert not key_leaks(str(info.value))
    assert before.strip().decode() not in str(info.value)
    assert [p.name for p in tmp_path.iterdir()] == ["agent.key"]


def test_keyring_load_reads_each_file(tmp_path: Path) -> None:
    path = _key_file(tmp_path, OTHER_KEY.hex().encode())
    ring = KeyRing.load({"old": path})
    assert dict(ring) == {"old": OTHER_KEY}
    assert SigningKey.load("old", path) == SigningKey("old", OTHER_KEY)


# ------------------------------------------------------------- Unix socket peer
def test_peer_credentials_name_the_connecting_process(tmp_path: Path) -> None:
    path = str(tmp_path / "agent.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(30)
    code = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "s.connect(sys.argv[1])\n"
        "s.settimeout(30)\n"
        "s.recv(1)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code, path])
    try:
        conn, _unused = server.accept()
        with conn:
            assert peer_credentials(conn) == (child.pid, os.getuid(), os.getgid())
    finally:
        server.close()
        child.wait(timeout=30)


def test_peer_credentials_of_a_socketpair_are_our_own() -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        assert peer_credentials(left) == (os.getpid(), os.getuid(), os.getgid())


@pytest.mark.parametrize(
    ("uid", "gid", "groups", "allowed"),
    [
        (1000, 1000, [], False),  # nobody is allowed implicitly
        (0, 0, [], False),  # not even root
        (1001, 1000, [], True),  # by uid
        (1000, 2000, [], True),  # by primary group
        (1000, 1000, [5, 2000], True),  # by a supplementary group
        (1000, 1000, [5, 6], False),
    ],
)
def test_peer_allowed_by_uid_or_any_group(
    uid: int, gid: int, groups: list[int], allowed: bool
) -> None:
    assert peer_allowed(uid, gid, groups, {1001}, {2000}) is allowed


ids = st.frozensets(st.integers(0, 6), max_size=3)


@settings(max_examples=400, deadline=None)
@given(
    uid=st.integers(0, 6),
    gid=st.integers(0, 6),
    groups=st.lists(st.integers(0, 6), max_size=4),
    operators=st.tuples(ids, ids),
    strategies=st.tuples(ids, ids),
)
def test_peer_roles_and_may_connect_are_peer_allowed_asking_the_groups_only_when_needed(
    uid: int,
    gid: int,
    groups: list[int],
    operators: tuple[frozenset[int], frozenset[int]],
    strategies: tuple[frozenset[int], frozenset[int]],
) -> None:
    asked: list[str] = []

    def lazy(who: str) -> Callable[[], list[int]]:
        def ask() -> list[int]:
            asked.append(who)
            return groups

        return ask

    operator = peer_allowed(uid, gid, groups, *operators)
    strategy = not operator and peer_allowed(uid, gid, groups, *strategies)
    assert peer_roles(uid, gid, lazy("roles"), operators, strategies) == (operator, strategy)
    assert peer_may_connect(uid, gid, lazy("connect"), operators, strategies) is (
        operator or strategy
    )
    by_ids = (
        peer_allowed(uid, gid, (), *operators),
        peer_allowed(uid, gid, (), *strategies),
    )
    roles_open = not by_ids[0] and bool(operators[1] or (strategies[1] and not by_ids[1]))
    connect_open = not any(by_ids) and bool(operators[1] or strategies[1])
    assert asked.count("roles") == int(roles_open)
    assert asked.count("connect") == int(connect_open)


@pytest.mark.parametrize("char", ['"', "\\", "😀", "€"])
def test_the_largest_valid_request_fits_a_signed_frame(char: str) -> None:
    data = encode_request(
        "heartbeat",
        {"strategy": "s" * 64},
        who=char * 64,
        reason=char * 512,
        request_id="i" * 64,
        nonce="f" * 64,
        ts=NOW,
    )
    signed = sign(data, "k" * 64, KEY)
    assert len(signed) <= MAX_FRAME // 2  # room to spare for later versions' additions
    assert verify(signed, {"k" * 64: KEY}, NOW, nonces=NonceCache()).reason == char * 512
