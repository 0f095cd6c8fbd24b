"""Who may command the agent: HMAC-signed frames on TCP, peer credentials on the Unix socket.

TCP (the controller's fleet-wide kill): every request travels inside one
signed frame, one JSON line::

    {"v": 1, "key_id": "<id>", "payload": "<the request JSON as a string>",
     "mac": "<hex HMAC-SHA256(key, payload as UTF-8 bytes)>"}

``verify`` checks, in this order, and trusts nothing of the request before
the MAC matched: the size, the frame's JSON shape, that ``key_id`` is known,
the MAC (``hmac.compare_digest``); then it parses the payload
(``protocol.parse_request``, whose last check is ``ts`` within the window,
else ``expired``), and last that the nonce is unseen within the window (else
``replayed``). Errors before the MAC matched repeat nothing of the frame.

Keys live in files of mode 0600 (or 0400) owned by the agent's user, as hex
digits (``generate_key``; ``load_key`` refuses anything looser). A key is
never part of an error text, a repr or a log line: ``KeyRing`` and
``SigningKey`` show key ids only.

Unix socket (local operators, strategies' heartbeats): the socket's file mode
keeps strangers out, and ``peer_credentials`` (``SO_PEERCRED``) with
``peer_allowed`` checks the connecting process's uid and groups against the
configured ones. No MAC there: the kernel vouches for the peer.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import os
import re
import secrets
import socket
import stat
import struct
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Set
from dataclasses import dataclass, field
from pathlib import Path

from tradeops.agent.protocol import (
    DEFAULT_WINDOW_S,
    MAX_FRAME,
    Command,
    ErrorCode,
    ProtocolError,
    Request,
    dumps,
    is_expired,
    load_object,
    parse_request,
)

AUTH_VERSION = 1  # the signed frame's own version (the payload carries the protocol's)
KEY_BYTES = 32  # generate_key writes this many random bytes
MIN_KEY_BYTES = 32  # load_key refuses shorter keys
MAX_KEY_FILE = 4096  # bytes; a key file is a line of hex digits
MAX_NONCES = 100_000
KEY_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAC_RE = re.compile(r"[0-9a-f]{64}")
_SIGNED_KEYS = frozenset({"v", "key_id", "payload", "mac"})
_UCRED = struct.Struct("iII")  # struct ucred: pid_t pid; uid_t uid; gid_t gid


class KeyFileError(Exception):
    """A key file that cannot be used; the text names the path and the fix, never the key."""


def _mac(key: bytes, payload: bytes) -> str:
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def _check_key(key_id: str, key: bytes) -> None:
    if not isinstance(key_id, str) or not KEY_ID_RE.fullmatch(key_id):
        raise ValueError(f"a key id must match {KEY_ID_RE.pattern}")
    if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
        raise ValueError(f"key {key_id}: a key must be at least {MIN_KEY_BYTES} bytes")


# ------------------------------------------------------------------ signing
def sign(request_bytes: bytes, key_id: str, key: bytes) -> bytes:
    """Wrap one request frame (from ``encode_request``) in a signed frame for the TCP listener.

    The MAC covers the request's bytes without their newline. Raises
    ``ValueError`` for a bad key id or a short key (naming neither the key nor
    its bytes) and ``ProtocolError`` if the request is not one UTF-8 line or
    the signed frame would exceed ``MAX_FRAME``.
    """
    _check_key(key_id, key)
    body = request_bytes[:-1] if request_bytes.endswith(b"\n") else request_bytes
    if b"\n" in body:
        raise ProtocolError(ErrorCode.MALFORMED, "a request to sign is one line")
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(ErrorCode.MALFORMED, "a request to sign must be UTF-8") from None
    frame = dumps({"v": AUTH_VERSION, "key_id": key_id, "payload": payload, "mac": _mac(key, body)})
    if len(frame) > MAX_FRAME:
        raise ProtocolError(
            ErrorCode.OVERSIZED,
            f"the signed frame is {len(frame)} bytes; the limit is {MAX_FRAME}",
        )
    return frame


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A client's key: its id and bytes (never shown by repr or str)."""

    key_id: str
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_key(self.key_id, self.key)

    @classmethod
    def load(cls, key_id: str, path: str | os.PathLike[str]) -> SigningKey:
        """Read the key from ``path`` with ``load_key``'s checks."""
        return cls(key_id, load_key(path))

    def sign(self, request_bytes: bytes) -> bytes:
        """``sign(request_bytes, self.key_id, self.key)``."""
        return sign(request_bytes, self.key_id, self.key)


class KeyRing(Mapping[str, bytes]):
    """The agent's keys, by key id. Its repr and str show the ids, never a key."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Mapping[str, bytes] | None = None) -> None:
        self._keys: dict[str, bytes] = {}
        for key_id, key in (keys or {}).items():
            _check_key(key_id, key)
            self._keys[key_id] = key

    @classmethod
    def load(cls, files: Mapping[str, str | os.PathLike[str]]) -> KeyRing:
        """Read each key id's file with ``load_key``'s checks."""
        return cls({key_id: load_key(path) for key_id, path in files.items()})

    def __getitem__(self, key_id: str) -> bytes:
        return self._keys[key_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeyRing(key_ids={sorted(self._keys)!r})"

    __str__ = __repr__


# -------------------------------------------------------------------- nonces
class NonceCache:
    """The nonces of accepted requests, each kept until its request would be ``expired``.

    A nonce is kept until ``expires_at`` (the request's ``ts`` plus the replay
    window): after that a replay of the request is refused as expired anyway,
    so forgetting the nonce opens nothing. Expiry goes by the request's own
    timestamp, not by arrival, so a clock step of the agent cannot expire a
    nonce whose request is still inside the window.

    Memory is bounded by ``max_entries``. When the cache is full of nonces
    still inside the window, a new request is refused (``refused``, retry
    later) rather than admitted by forgetting a live nonce: forgetting one
    would let that request be replayed, and the commands here (reset, flatten)
    must never run twice from one signature. Only holders of a key can add
    nonces (the MAC is checked first), and 100,000 inside a 5 s window is far
    beyond a real controller's rate, so a full cache means a runaway or
    compromised client, which is better refused than obeyed. Measured cost
    (tracemalloc, 32-digit nonces): about 210 bytes per entry, 21 MB when full.
    """

    def __init__(self, max_entries: int = MAX_NONCES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def __contains__(self, nonce: object) -> bool:
        return nonce in self._expiry

    def __repr__(self) -> str:
        return f"NonceCache({len(self)}/{self.max_entries})"

    def _prune(self, now: float) -> None:
        heap, expiry = self._heap, self._expiry
        while heap and heap[0][0] < now:
            expires_at, nonce = heapq.heappop(heap)
            if expiry.get(nonce) == expires_at:
                del expiry[nonce]

    def admit(self, nonce: str, expires_at: float, now: float) -> None:
        """Remember ``nonce`` until ``expires_at``; refuse it if seen or if the cache is full.

        Raises ``ProtocolError`` (``replayed`` or ``refused``) and then changes
        nothing but forgetting nonces already past their expiry.
        """
        self._prune(now)
        if nonce in self._expiry:
            raise ProtocolError(
                ErrorCode.REPLAYED,
                "this nonce was already used inside the replay window: the request is a replay, "
                "or the client reused a nonce (send a new request with a fresh nonce)",
            )
        if len(self._expiry) >= self.max_entries:
            wait = max(0.0, self._heap[0][0] - now)
            raise ProtocolError(
                ErrorCode.REFUSED,
                f"too many requests: {self.max_entries} nonces are still inside the replay "
                f"window; retry in {wait:.1f} s",
            )
        self._expiry[nonce] = expires_at
        heapq.heappush(self._heap, (expires_at, nonce))


# ---------------------------------------------------------------- verifying
def _unauthenticated(text: str) -> ProtocolError:
    return ProtocolError(ErrorCode.UNAUTHENTICATED, text)


@dataclass(frozen=True, slots=True)
class Verified:
    """An authenticated request, and which lenient check it would have failed."""

    request: Request
    expired: bool = False  # ts outside the window (only for a lenient command)
    replayed: bool = False  # nonce already accepted (only for a lenient command)


def verify(
    frame: bytes,
    keys: Mapping[str, bytes],
    now: float,
    window_s: float = DEFAULT_WINDOW_S,
    *,
    nonces: NonceCache,
) -> Request:
    """Authenticate one signed frame and return its request; raise ``ProtocolError`` otherwise.

    Only an accepted request adds its nonce to ``nonces``; a refused frame adds
    nothing (a replay or a full cache may only forget nonces already past their
    expiry) and ``keys`` is only read.
    """
    return authenticate(frame, keys, now, window_s, nonces=nonces).request


def authenticate(
    frame: bytes,
    keys: Mapping[str, bytes],
    now: float,
    window_s: float = DEFAULT_WINDOW_S,
    *,
    nonces: NonceCache,
    lenient: Collection[Command] = (),
) -> Verified:
    """``verify``, except that a command in ``lenient`` passes the time and nonce checks.

    Such a request, once its MAC matched, is returned with ``expired`` or
    ``replayed`` set instead of being refused (the agent carries out a halt
    whatever the clocks say, and audits it). An expired one adds no nonce; a
    full nonce cache does not stop it either. Every other check is the same.
    """
    signed = load_object(frame, "signed frame", quiet=True)  # size, then JSON
    v = signed.get("v")
    if not isinstance(v, int) or isinstance(v, bool):
        raise ProtocolError(ErrorCode.MALFORMED, "a signed frame needs an integer version v")
    if v != AUTH_VERSION:
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"the signed frame is version {v}; this agent verifies version {AUTH_VERSION}",
        )
    if set(signed) != _SIGNED_KEYS:
        raise ProtocolError(
            ErrorCode.MALFORMED, f"a signed frame has exactly the keys {sorted(_SIGNED_KEYS)}"
        )
    key_id, payload, mac = signed["key_id"], signed["payload"], signed["mac"]
    if not isinstance(key_id, str) or not KEY_ID_RE.fullmatch(key_id):
        raise ProtocolError(ErrorCode.MALFORMED, f"key_id must match {KEY_ID_RE.pattern}")
    if not isinstance(mac, str) or not MAC_RE.fullmatch(mac):
        raise ProtocolError(ErrorCode.MALFORMED, "mac must be 64 lowercase hex digits")
    if not isinstance(payload, str):
        raise ProtocolError(ErrorCode.MALFORMED, "payload must be a string (the request's JSON)")
    try:
        body = payload.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError(ErrorCode.MALFORMED, "payload is not valid Unicode") from None

    key = keys.get(key_id)
    if key is None:
        raise _unauthenticated(
            "the frame names a key id this agent does not have: check the controller's key id "
            "and the agent's key files"
        )
    if not hmac.compare_digest(_mac(key, body), mac):
        raise _unauthenticated(
            "the MAC does not match: the frame was altered, or signed with another key than the "
            "one its key id names on this agent"
        )

    request = parse_request(body, now, window_s, lenient=lenient)  # authenticated from here on
    if request.cmd in lenient and is_expired(request, now, window_s):
        return Verified(request, expired=True)
    try:
        nonces.admit(request.nonce, request.ts + window_s, now)
    except ProtocolError as exc:
        if request.cmd in lenient:
            return Verified(request, replayed=exc.code is ErrorCode.REPLAYED)
        raise exc.about(request.id, request.v) from None
    return Verified(request)


# ---------------------------------------------------------------- key files
def load_key(path: str | os.PathLike[str]) -> bytes:
    """Read a key file (hex digits); refuse one that others could read, write or own.

    Refused: not a regular file, a mode other than 0600 or 0400, another
    owner than this process's effective uid, anything but hex digits, a key
    shorter than ``MIN_KEY_BYTES``. Each ``KeyFileError`` names the path and
    the fix; none contains the file's content.
    """
    path = Path(path)
    try:
        # O_NONBLOCK: a FIFO in the key's place must not hang the agent; fstat refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise KeyFileError(
            f"{path}: cannot open the key file ({exc.strerror}); create it with generate_key "
            "or fix its path"
        ) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(
                f"{path}: not a regular file; a key is a plain file of mode 0600 owned by the "
                "agent's user"
            )
        mode = stat.S_IMODE(st.st_mode)
        if mode not in (0o600, 0o400):
            exposed = " (the group or others can reach the key: rotate it)" if mode & 0o077 else ""
            raise KeyFileError(
                f"{path}: mode {mode:04o}, a key file must be 0600 or 0400{exposed}; "
                f"run: chmod 600 {path}"
            )
        euid = os.geteuid()
        if st.st_uid != euid:
            raise KeyFileError(
                f"{path}: owned by uid {st.st_uid}, but this process runs as uid {euid}; "
                f"run: chown {euid} {path}"
            )
        raw = b""
        while len(raw) <= MAX_KEY_FILE:  # bounded: each pass reads at least a byte, or ends
            chunk = os.read(fd, MAX_KEY_FILE + 1 - len(raw))
            if not chunk:
                break
            raw += chunk
    finally:
        os.close(fd)
    if len(raw) > MAX_KEY_FILE:
        raise KeyFileError(
            f"{path}: larger than {MAX_KEY_FILE} bytes; a key file is one line of hex digits"
        )
    text = raw.strip()
    if not re.fullmatch(rb"(?:[0-9a-fA-F]{2})+", text):
        raise KeyFileError(
            f"{path}: a key file holds the key as hex digits and nothing else; "
            "write a new one with generate_key"
        )
    key = bytes.fromhex(text.decode("ascii"))
    if len(key) < MIN_KEY_BYTES:
        raise KeyFileError(
            f"{path}: the key is {len(key)} bytes, at least {MIN_KEY_BYTES} are needed; "
            "write a new one with generate_key"
        )
    return key


def generate_key(path: str | os.PathLike[str]) -> Path:
    """Write a new key of ``KEY_BYTES`` random bytes, hex-encoded, mode 0600; return the path.

    Atomic: written and fsync'd under a temporary name, then hard-linked to
    ``path``, which fails if ``path`` exists (a key is never overwritten; to
    rotate, remove the old file first). A crash leaves no partial key file.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            data = (secrets.token_bytes(KEY_BYTES).hex() + "\n").encode("ascii")
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise KeyFileError(
                f"{path}: exists; a key is never overwritten: remove the old file first to rotate"
            ) from None
    finally:
        os.unlink(tmp)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


# -------------------------------------------------------------- Unix socket
def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """The connected peer's ``(pid, uid, gid)`` as the kernel recorded them (``SO_PEERCRED``).

    The gid is the peer's primary group at connect time; its supplementary
    groups are not part of ``SO_PEERCRED``.
    """
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return pid, uid, gid


def peer_allowed(
    uid: int,
    gid: int,
    groups: Iterable[int],
    allowed_uids: Set[int],
    allowed_gids: Set[int],
) -> bool:
    """Whether a peer may command the agent: its uid, gid or one of ``groups`` is allowed.

    Nothing is allowed implicitly, root included: list uid 0 to allow root.
    """
    return uid in allowed_uids or gid in allowed_gids or not allowed_gids.isdisjoint(groups)


def peer_roles(
    uid: int,
    gid: int,
    groups: Callable[[], Iterable[int]],
    operators: tuple[Set[int], Set[int]],
    strategies: tuple[Set[int], Set[int]],
) -> tuple[bool, bool]:
    """``(operator, strategy)`` of a peer: ``peer_allowed`` against each (uids, gids) pair.

    An operator is not also reported a strategy. ``groups()`` (a system call on
    the socket) is asked only when the uid and primary group leave it open.
    """
    if peer_allowed(uid, gid, (), *operators):
        return True, False
    found: tuple[int, ...] = ()
    if operators[1] or (strategies[1] and not peer_allowed(uid, gid, (), *strategies)):
        found = tuple(groups())
    if peer_allowed(uid, gid, found, *operators):
        return True, False
    return False, peer_allowed(uid, gid, found, *strategies)


def peer_may_connect(
    uid: int,
    gid: int,
    groups: Callable[[], Iterable[int]],
    operators: tuple[Set[int], Set[int]],
    strategies: tuple[Set[int], Set[int]],
) -> bool:
    """Whether ``peer_roles`` gives the peer a role, with less asked (the halt's path).

    The uid and primary group are tried against both pairs before ``groups()``.
    """
    if peer_allowed(uid, gid, (), *operators) or peer_allowed(uid, gid, (), *strategies):
        return True
    if not operators[1] and not strategies[1]:
        return False
    found = tuple(groups())
    return peer_allowed(uid, gid, found, *operators) or peer_allowed(uid, gid, found, *strategies)
