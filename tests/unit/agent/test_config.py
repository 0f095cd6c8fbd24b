"""The agent's config (strict, ``format: 1``) and the lenient option of ``authenticate``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.agent.protokit import KEY, KEY_ID, NOW, WINDOW
from tradeops.agent.auth import NonceCache, SigningKey, authenticate, verify
from tradeops.agent.config import ConfigError, load_config, parse_config
from tradeops.agent.protocol import Command, ErrorCode, ProtocolError, encode_request
from tradeops.agent.server import TIGHTENING


def test_defaults_resolve_against_the_root() -> None:
    config = parse_config({"format": 1, "root": "/srv/t"})
    assert config.unix.path == Path("/srv/t/run/agent.sock")
    assert config.unix.mode == 0o660
    assert config.liveness.path == Path("/srv/t/run/agent-liveness")
    assert (config.liveness.interval_s, config.tcp) == (0.05, None)


def test_a_yaml_file_with_tcp_and_octal_mode(tmp_path: Path) -> None:
    path = tmp_path / "agent.yml"
    path.write_text(
        "format: 1\nroot: /srv/t\nunix: {mode: '0600', allowed_uids: [1001], allowed_gids: [7]}\n"
        "tcp: {listen: '127.0.0.1:7301', keys: {ctl: /srv/t/shared/secrets/ctl.key}}\n"
    )
    config = load_config(path)
    assert (config.unix.mode, config.unix.allowed_uids) == (0o600, frozenset({1001}))
    assert config.tcp is not None
    assert (config.tcp.host, config.tcp.port) == ("127.0.0.1", 7301)


@pytest.mark.parametrize(
    ("over", "text"),
    [
        ({"format": 2}, "format 2"),
        ({"halt_on_sunday": True}, "unknown key(s) halt_on_sunday"),
        ({"unix": {"allowed_uid": [1]}}, "unix: unknown key(s) allowed_uid"),
        ({"unix": {"mode": "0666"}}, "lets others reach the socket"),
        ({"tcp": {"listen": "localhost:1", "keys": {"a": "/k"}}}, "not an IP address"),
        ({"tcp": {"listen": "127.0.0.1:1", "keys": {}}}, "at least one key"),
        ({"liveness": {"interval_s": 0}}, "interval_s must be between"),
        ({"root": "relative"}, "absolute path"),
    ],
)
def test_a_bad_config_is_refused_naming_the_key(over: dict[str, Any], text: str) -> None:
    with pytest.raises(ConfigError, match=text.replace("(", r"\(").replace(")", r"\)")):
        parse_config({"format": 1, "root": "/srv/t", **over})


def _signed(cmd: Command, ts: float) -> bytes:
    return SigningKey(KEY_ID, KEY).sign(encode_request(cmd, who="ops", reason="r", ts=ts))


def test_a_lenient_command_passes_time_and_nonce_checks_and_says_which() -> None:
    keys, nonces = {KEY_ID: KEY}, NonceCache()
    old = _signed(Command.HALT, NOW - 3600)
    got = authenticate(old, keys, NOW, WINDOW, nonces=nonces, lenient=TIGHTENING)
    assert (got.expired, got.replayed, len(nonces)) == (True, False, 0)
    fresh = _signed(Command.HALT, NOW)
    assert not authenticate(fresh, keys, NOW, WINDOW, nonces=nonces, lenient=TIGHTENING).replayed
    again = authenticate(fresh, keys, NOW, WINDOW, nonces=nonces, lenient=TIGHTENING)
    assert (again.expired, again.replayed) == (False, True)


def test_strict_commands_and_verify_keep_every_check() -> None:
    keys, nonces = {KEY_ID: KEY}, NonceCache()
    with pytest.raises(ProtocolError) as exc:
        authenticate(_signed(Command.RESET, NOW - 3600), keys, NOW, WINDOW, nonces=nonces,
                     lenient=TIGHTENING)  # fmt: skip
    assert exc.value.code is ErrorCode.EXPIRED
    with pytest.raises(ProtocolError) as exc:
        verify(_signed(Command.HALT, NOW - 3600), keys, NOW, WINDOW, nonces=nonces)
    assert exc.value.code is ErrorCode.EXPIRED
    with pytest.raises(ProtocolError) as exc:  # the MAC still comes first
        authenticate(_signed(Command.HALT, NOW), {KEY_ID: b"x" * 32}, NOW, WINDOW,
                     nonces=nonces, lenient=TIGHTENING)  # fmt: skip
    assert exc.value.code is ErrorCode.UNAUTHENTICATED
