"""A small synchronous client: one request to the agent, one parsed response.

Over the Unix socket (the kernel vouches for the caller) or over TCP with a
signing key. Transport failures raise ``AgentUnreachable`` (not running, no
answer in time) or ``AgentPermissionDenied`` (the socket's file mode); a
refusal by the agent is a ``Response`` with ``ok`` False (``checked`` turns it
into ``AgentRefused``).
"""

from __future__ import annotations

import errno
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradeops.agent.auth import SigningKey
from tradeops.agent.protocol import (
    MAX_FRAME,
    Command,
    CommandArgs,
    ErrorCode,
    ProtocolError,
    Response,
    encode_request,
    parse_response,
)

DEFAULT_TIMEOUT_S = 2.0


class AgentError(Exception):
    """A request that did not get an answer, or got a refusal."""


class AgentUnreachable(AgentError):
    """Nothing answered: the agent is not running, or did not answer in time."""


class AgentPermissionDenied(AgentError):
    """The socket's permissions, or the agent's peer check, keep this caller out."""


class AgentRefused(AgentError):
    """The agent answered with a protocol refusal."""

    def __init__(self, response: Response) -> None:
        assert response.error is not None
        super().__init__(f"the agent refused: {response.error.code.value}: {response.error.text}")
        self.response = response


def checked(response: Response) -> Response:
    """``response`` if it is ok; raise ``AgentRefused`` (or permission denied) otherwise."""
    if response.error is None:
        return response
    if response.error.code is ErrorCode.FORBIDDEN:
        raise AgentPermissionDenied(f"the agent refused this caller: {response.error.text}")
    raise AgentRefused(response)


@dataclass(frozen=True)
class AgentClient:
    """Where the agent listens: ``socket_path``, or ``tcp`` (host, port) with ``key``."""

    socket_path: Path | None = None
    tcp: tuple[str, int] | None = None
    key: SigningKey | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if (self.socket_path is None) == (self.tcp is None):
            raise ValueError("an agent client needs exactly one of socket_path and tcp")
        if self.tcp is not None and self.key is None:
            raise ValueError("the TCP listener needs a signing key (key id and key file)")

    @property
    def where(self) -> str:
        """The address, for messages."""
        return str(self.socket_path) if self.socket_path else f"{self.tcp[0]}:{self.tcp[1]}"  # type: ignore[index]

    def request(
        self,
        cmd: Command | str,
        args: CommandArgs | Mapping[str, Any] | None = None,
        *,
        who: str,
        reason: str = "",
    ) -> Response:
        """Send one request and return the agent's response (a refusal included)."""
        frame = encode_request(cmd, args, who=who, reason=reason)
        return self.send(frame)

    def send(self, frame: bytes) -> Response:
        """Send one request frame (signed here for TCP) and return the parsed response."""
        if self.key is not None and self.tcp is not None:
            frame = self.key.sign(frame)
        deadline = time.monotonic() + self.timeout_s
        sock = self._connect()
        try:
            sock.sendall(frame)
            data = b""
            while not data.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                chunk = sock.recv(MAX_FRAME + 1 - len(data))
                if not chunk:
                    raise AgentUnreachable(
                        f"the agent at {self.where} closed the connection without an answer"
                    )
                data += chunk
                if len(data) > MAX_FRAME:
                    raise AgentError(f"the agent at {self.where} sent an oversized answer")
        except TimeoutError:
            raise AgentUnreachable(
                f"the agent at {self.where} did not answer within {self.timeout_s:g} s"
            ) from None
        except OSError as exc:
            raise AgentUnreachable(f"the agent at {self.where}: {exc.strerror or exc}") from None
        finally:
            sock.close()
        try:
            return parse_response(data)
        except ProtocolError as exc:
            raise AgentError(f"the agent at {self.where} sent an invalid answer: {exc}") from None

    def _connect(self) -> socket.socket:
        if self.socket_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: Any = os.fspath(self.socket_path)
        else:
            assert self.tcp is not None
            sock = socket.socket(socket.AF_INET6 if ":" in self.tcp[0] else socket.AF_INET)
            target = self.tcp
        sock.settimeout(self.timeout_s)
        try:
            sock.connect(target)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise AgentUnreachable(
                f"the agent is not running (nothing listens on {self.where})"
            ) from None
        except PermissionError:
            sock.close()
            raise AgentPermissionDenied(
                f"permission denied on {self.where}: this user is not in the agent's socket group"
            ) from None
        except TimeoutError:
            sock.close()
            raise AgentUnreachable(
                f"the agent at {self.where} did not accept within {self.timeout_s:g} s"
            ) from None
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise AgentPermissionDenied(f"permission denied on {self.where}") from None
            raise AgentUnreachable(f"cannot reach the agent at {self.where}: {exc}") from None
        return sock
