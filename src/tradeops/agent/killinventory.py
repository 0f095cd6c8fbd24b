"""The fleet-kill inventory: which agents ``tradeops kill`` commands, and how to reach them.

A small YAML or JSON file, ``format: 1``, read strictly (docs/fleet-kill.md)::

    format: 1
    defaults:                       # merged under every host (a host's own keys win)
      key_id: controller-2026
      key_file: /etc/tradeops/kill/controller-2026.key
      root: /srv/tradeops           # the host's tradeops_root (default)
      venv: /srv/tradeops/venv      # the host's venv (default <root>/venv)
      ssh: {user: oncall, port: 22, key_file: ~/.ssh/id_ed25519,
            known_hosts: ~/.ssh/known_hosts}
    hosts:
      - name: ny4-trade-1
        tcp: "10.1.0.11:7301"       # the agent's TCP listener
        ssh: {host: 10.1.0.11}      # for --transport ssh

A key nobody declared, a missing field, a duplicate host name is refused with
``InventoryError`` naming the file, the host and the key. Key files are only
named here; ``fleetkill`` reads them with ``auth.load_key``'s checks (0600).
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tradeops.agent.auth import KEY_ID_RE

INVENTORY_FORMAT = 1
DEFAULT_ROOT = "/srv/tradeops"
HOST_KEYS = {"name", "tcp", "key_id", "key_file", "ssh", "root", "venv"}
SSH_KEYS = {"host", "port", "user", "key_file", "known_hosts"}
MAX_HOSTS = 4096


class InventoryError(ValueError):
    """An inventory ``tradeops kill`` refuses; the text names the file, host and key."""


@dataclass(frozen=True, slots=True)
class SshTarget:
    """How to log in to a host (known_hosts is required: no trust on first use)."""

    host: str
    port: int = 22
    user: str = "root"
    key_file: Path | None = None
    known_hosts: Path | None = None


@dataclass(frozen=True, slots=True)
class KillHost:
    """One host: its agent's TCP listener and key, and/or its SSH target."""

    name: str
    tcp: tuple[str, int] | None = None
    key_id: str | None = None
    key_file: Path | None = None
    ssh: SshTarget | None = None
    root: Path = Path(DEFAULT_ROOT)
    venv: Path | None = None

    @property
    def host_venv(self) -> Path:
        """The host's venv (default ``<root>/venv``)."""
        return self.venv if self.venv is not None else self.root / "venv"


def _address(value: object, where: str) -> tuple[str, int]:
    if not isinstance(value, str) or ":" not in value:
        raise InventoryError(f"{where} must be 'address:port', got {value!r}")
    host, _unused, port = value.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise InventoryError(f"{where}: {host!r} is not an IP address") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InventoryError(f"{where}: port {port!r} is not between 1 and 65535")
    return host, int(port)


def _path(value: object, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise InventoryError(f"{where} must be a path, got {value!r}")
    return Path(os.path.expanduser(value))


def _mapping(value: object, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InventoryError(f"{where} must be a mapping, got {type(value).__name__}")
    unknown = sorted(str(k) for k in set(value) - allowed)
    if unknown:
        raise InventoryError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    return value


def _ssh(value: object, where: str) -> SshTarget:
    s = _mapping(value, where, SSH_KEYS)
    if not isinstance(s.get("host"), str) or not s["host"]:
        raise InventoryError(f"{where}.host is required (an address or a name)")
    port = s.get("port", 22)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise InventoryError(f"{where}.port must be an integer port, got {port!r}")
    user = s.get("user", "root")
    if not isinstance(user, str) or not user:
        raise InventoryError(f"{where}.user must be a user name, got {user!r}")
    return SshTarget(
        s["host"],
        port,
        user,
        _path(s["key_file"], f"{where}.key_file") if "key_file" in s else None,
        _path(s["known_hosts"], f"{where}.known_hosts") if "known_hosts" in s else None,
    )


def _host(raw: Mapping[str, Any], defaults: Mapping[str, Any], where: str) -> KillHost:
    entry = dict(defaults)
    entry.update(raw)
    if isinstance(defaults.get("ssh"), dict) and isinstance(raw.get("ssh"), dict):
        entry["ssh"] = {**defaults["ssh"], **raw["ssh"]}
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise InventoryError(f"{where}: name is required")
    where = f"{where} ({name})"
    key_id = entry.get("key_id")
    if key_id is not None and (not isinstance(key_id, str) or not KEY_ID_RE.fullmatch(key_id)):
        raise InventoryError(f"{where}: key_id must match {KEY_ID_RE.pattern}")
    tcp = _address(entry["tcp"], f"{where}: tcp") if "tcp" in entry else None
    if tcp is not None and (key_id is None or "key_file" not in entry):
        raise InventoryError(f"{where}: tcp needs key_id and key_file (the agent's HMAC key)")
    ssh = _ssh(entry["ssh"], f"{where}: ssh") if "ssh" in entry else None
    if tcp is None and ssh is None:
        raise InventoryError(f"{where}: give tcp (address:port), ssh, or both")
    root = _path(entry.get("root", DEFAULT_ROOT), f"{where}: root")
    return KillHost(
        name=name,
        tcp=tcp,
        key_id=key_id,
        key_file=_path(entry["key_file"], f"{where}: key_file") if "key_file" in entry else None,
        ssh=ssh,
        root=root,
        venv=_path(entry["venv"], f"{where}: venv") if "venv" in entry else None,
    )


def parse_inventory(data: object, source: str = "inventory") -> list[KillHost]:
    """Validate a loaded inventory document; raise ``InventoryError`` on anything wrong."""
    top = _mapping(data, source, {"format", "defaults", "hosts"})
    if top.get("format") != INVENTORY_FORMAT or isinstance(top.get("format"), bool):
        raise InventoryError(
            f"{source}: format {top.get('format')!r}; tradeops kill reads format {INVENTORY_FORMAT}"
        )
    defaults = _mapping(top.get("defaults", {}), f"{source}: defaults", HOST_KEYS - {"name"})
    hosts = top.get("hosts")
    if not isinstance(hosts, list) or not hosts:
        raise InventoryError(f"{source}: hosts must be a non-empty list")
    if len(hosts) > MAX_HOSTS:
        raise InventoryError(f"{source}: at most {MAX_HOSTS} hosts")
    out: list[KillHost] = []
    for i, raw in enumerate(hosts):
        where = f"{source}: hosts[{i}]"
        out.append(_host(_mapping(raw, where, HOST_KEYS), defaults, where))
    names = [h.name for h in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InventoryError(f"{source}: duplicate host name(s) {', '.join(dupes)}")
    return out


def load_inventory(path: str | os.PathLike[str]) -> list[KillHost]:
    """Read ``path`` (``.json`` as JSON, anything else as YAML) and validate it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read the inventory ({exc.strerror})") from None
    try:
        data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise InventoryError(f"{path}: not valid JSON or YAML: {exc}") from None
    return parse_inventory(data, str(path))
