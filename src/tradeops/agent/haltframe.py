"""A halt frame in the form every tradeops client writes, recognised without a JSON parse.

The Unix socket's accept thread publishes HALTED before the event loop sees
the connection (``unixfast``). Validating the frame with ``parse_request``
costs 15 µs warm and 40 to 50 µs on the halt's path, where the caches are
cold: a fifth of the whole trip. ``match`` recognises the one form that
``encode_request`` writes for a halt (compact JSON, keys in its order, ASCII
text without escapes) with a single regular expression, and nothing else.

It may refuse what ``parse_request`` accepts (any other key order, spacing
or escape): ``peek_halt`` then falls back to ``parse_request``. It must
never accept what ``parse_request`` refuses, or a frame the agent refuses
would change the state: a property test checks that every frame it accepts
parses to the same halt (tests/unit/agent/test_haltframe.py). The pattern is
built from the protocol's own limits and patterns, so the two cannot drift.
"""

from __future__ import annotations

import re

from tradeops.agent.protocol import (
    COMMANDS,
    ID_RE,
    MAX_REASON,
    MAX_WHO,
    NONCE_RE,
    OLDEST_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    Command,
)
from tradeops.agent.reasons import Reason

# Printable ASCII except the quote and the backslash: no JSON escape can occur.
_TEXT = r"[ !#-\[\]-~]"
_CODES = "|".join(
    re.escape(choice) for rule in COMMANDS[Command.HALT].rules for choice in rule.choices
)
# A number json.dumps writes for a float or int timestamp: finite, no exponent.
_TS = r"-?(?:0|[1-9][0-9]{0,15})(?:\.[0-9]{1,17})?"

_FRAME = re.compile(
    r'\{"v":(?P<v>[1-9][0-9]{0,2}),'
    rf'"id":"{ID_RE.pattern}",'
    r'"cmd":"halt",'
    rf'"args":\{{(?:"reason_code":"(?P<code>{_CODES})")?\}},'
    rf'"who":"(?P<who>{_TEXT}{{1,{MAX_WHO}}})",'
    rf'"reason":"(?P<reason>{_TEXT}{{1,{MAX_REASON}}})",'
    rf'"ts":{_TS},'
    rf'"nonce":"{NONCE_RE.pattern}"\}}'
)


def match(line: bytes) -> tuple[Reason, str] | None:
    """(reason code, who) of a canonical halt frame (without its newline); else None."""
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        return None
    found = _FRAME.fullmatch(text)
    if found is None:
        return None
    who, reason = found["who"], found["reason"]
    if not OLDEST_PROTOCOL_VERSION <= int(found["v"]) <= PROTOCOL_VERSION:
        return None
    if not who.strip() or not reason.strip():
        return None
    return Reason(found["code"] or Reason.MANUAL), who
