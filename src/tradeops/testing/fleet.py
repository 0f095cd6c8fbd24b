"""Loopback SSH test fleet: N "hosts" on one machine.

Each host is an ``sshd`` listening on its own loopback address (127.0.0.11,
127.0.0.12, ...) inside private mount and UTS namespaces, with its own
hostname, its own directory bind-mounted on ``data_root`` and (by default) its
own copy of ``/etc``. See ``docs/test-fleet.md`` for the design and limits.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import ipaddress
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SSHD = "/usr/sbin/sshd"
DEFAULT_NAME = "fleet"
DEFAULT_FIRST_ADDRESS = "127.0.0.11"
DEFAULT_PORT = 2222
DEFAULT_DATA_ROOT = "/srv/tradeops"
REMOTE_PYTHON = "/usr/bin/python3"
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
FLEET_BLOCKS = tuple(range(100, 250))  # 127.0.<block>.11 and up: where test fleets are placed
STATE_VERSION = 1
# sshd refuses to start without its privilege separation directory.
PRIVSEP_DIR = Path("/run/sshd")
# A control socket is "<dir>/<40 hex>" plus a ".<16 chars>" temporary suffix while
# ssh sets it up; sun_path holds 107 bytes.
MAX_CONTROL_DIR_LEN = 45
TERM_WAIT_S = 5.0
KILL_WAIT_S = 5.0
POLL_S = 0.05


class FleetUnavailable(RuntimeError):
    """The machine lacks something the fleet needs (root, unshare, sshd, ssh)."""


class FleetError(RuntimeError):
    """The fleet could not be brought up or torn down."""


@dataclass(frozen=True)
class FleetHost:
    """One host of the fleet as seen from the outside."""

    name: str
    index: int
    address: str
    port: int


# --------------------------------------------------------------------------- pure helpers


def check_prerequisites(
    *,
    euid: int | None = None,
    which: Callable[[str], str | None] = shutil.which,
    exists: Callable[[str], bool] = os.path.exists,
    sshd: str = SSHD,
) -> None:
    """Raise :class:`FleetUnavailable` naming everything the fleet lacks."""
    missing: list[str] = []
    if (os.geteuid() if euid is None else euid) != 0:
        missing.append("root privileges (euid is not 0; run as root)")
    if which("unshare") is None:
        missing.append("the unshare command (install util-linux)")
    if not exists(sshd):
        missing.append(f"{sshd} (install openssh-server)")
    for tool in ("ssh", "ssh-keygen"):
        if which(tool) is None:
            missing.append(f"the {tool} command (install openssh-client)")
    if missing:
        raise FleetUnavailable("test fleet unavailable, missing: " + "; ".join(missing))


def host_address(first_address: str, index: int) -> str:
    """Return the address of host ``index`` (1-based); it must stay in 127.0.0.0/8."""
    if index < 1:
        raise ValueError(f"host index must be >= 1, got {index}")
    first = ipaddress.ip_address(first_address)
    if first not in LOOPBACK:
        raise ValueError(f"{first_address} is not in {LOOPBACK}")
    addr = first + (index - 1)
    if addr not in LOOPBACK or addr == LOOPBACK.broadcast_address:
        raise ValueError(f"host {index} from {first_address} leaves {LOOPBACK}")
    return str(addr)


def fleet_hosts(name: str, size: int, first_address: str, port: int) -> list[FleetHost]:
    """Return the hosts ``<name>-1`` .. ``<name>-<size>`` with consecutive addresses."""
    if size < 0:
        raise ValueError(f"fleet size must be >= 0, got {size}")
    return [
        FleetHost(f"{name}-{i}", i, host_address(first_address, i), port)
        for i in range(1, size + 1)
    ]


def control_dir_for(state_dir: Path) -> Path:
    """Return a directory for ssh control sockets short enough for a unix socket path."""
    candidate = Path(state_dir) / "cp"
    if len(str(candidate)) <= MAX_CONTROL_DIR_LEN:
        return candidate
    digest = hashlib.sha256(str(Path(state_dir)).encode()).hexdigest()[:12]
    return Path("/tmp") / f"tradeops-cp-{digest}"  # noqa: S108 - short path needed


def render_sshd_config(
    *,
    address: str,
    port: int,
    host_key: Path,
    pid_file: Path,
    authorized_keys: Path,
    log_level: str = "INFO",
) -> str:
    """Render the ``sshd_config`` of one host."""
    lines = [
        "# Written by tradeops.testing.fleet; regenerated at every 'up'.",
        f"ListenAddress {address}:{port}",
        "AddressFamily inet",
        f"HostKey {host_key}",
        f"PidFile {pid_file}",
        f"AuthorizedKeysFile {authorized_keys}",
        "AuthorizedPrincipalsFile none",
        "PubkeyAuthentication yes",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "UseDNS no",
        f"LogLevel {log_level}",
        # Ansible with 8 forks and ControlPersist opens many sessions at once.
        "MaxStartups 128:30:256",
        "MaxSessions 128",
        "PrintMotd no",
        "PrintLastLog no",
        "X11Forwarding no",
        "AcceptEnv LANG LC_*",
        "Subsystem sftp internal-sftp",
    ]
    return "\n".join(lines) + "\n"


def render_host_script(
    *,
    data_dir: Path,
    data_root: str,
    etc_dir: Path | None,
    hostname: str,
    sshd_config: Path,
    sshd: str = SSHD,
) -> str:
    """Render the ``/bin/sh -c`` script run inside a host's fresh namespaces."""
    q = shlex.quote
    steps = ["set -e", f"mount --bind {q(str(data_dir))} {q(data_root)}"]
    if etc_dir is not None:
        steps.append(f"mount --bind {q(str(etc_dir))} /etc")
    steps.append(f"hostname {q(hostname)}")
    steps.append(f"exec {q(sshd)} -D -e -f {q(str(sshd_config))}")
    return "; ".join(steps)


def set_root_home(passwd: Path, home: Path) -> None:
    """Point root's home in a host's own ``/etc/passwd`` at ``home``.

    Bash reads ``~/.bashrc`` for every command run over SSH, and the build
    machine's ``/root/.bashrc`` may be heavy (here it runs ``pyenv init``: about
    100 processes and 0.1 s of CPU per SSH command). Each host gets its own,
    empty root home instead, as a real host has. (A bind mount over ``/root``
    would hide fleet state directories that live under ``/root``.)
    """
    lines = passwd.read_text().splitlines()
    for index, line in enumerate(lines):
        fields = line.split(":")
        if len(fields) == 7 and fields[0] == "root":
            fields[5] = str(home)
            lines[index] = ":".join(fields)
    passwd.write_text("\n".join(lines) + "\n")


def ssh_client_options(known_hosts: Path, private_key: Path) -> list[str]:
    """Return the ssh ``-o`` options that pin the fleet's key and known_hosts."""
    return [
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-i",
        str(private_key),
    ]


def render_inventory(
    *,
    name: str,
    hosts: Sequence[FleetHost],
    private_key: Path,
    known_hosts: Path,
    control_dir: Path,
    data_root: str,
    python: str = REMOTE_PYTHON,
) -> str:
    """Render the YAML inventory: group ``name`` with every host and ``tradeops_root``."""
    q = shlex.quote
    common_args = " ".join(
        [
            f"-o UserKnownHostsFile={q(str(known_hosts))}",
            "-o GlobalKnownHostsFile=/dev/null",
            "-o StrictHostKeyChecking=yes",
            "-o IdentitiesOnly=yes",
            f"-o ControlPath={q(str(control_dir))}/%C",
        ]
    )
    host_vars = {
        h.name: {
            "ansible_host": h.address,
            "ansible_port": h.port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(private_key),
            "ansible_ssh_common_args": common_args,
            "ansible_ssh_pipelining": True,
            "ansible_python_interpreter": python,
        }
        for h in hosts
    }
    data = {
        "all": {
            "children": {
                name: {
                    "hosts": host_vars,
                    "vars": {"tradeops_root": data_root},
                }
            }
        }
    }
    header = "# Written by tradeops.testing.fleet; regenerated at every 'up'.\n"
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def parse_start_time(stat_text: str) -> int:
    """Return field 22 (start time in clock ticks) of a ``/proc/<pid>/stat`` line."""
    # Field 2 (comm) may contain spaces and parentheses: split after the last ')'.
    rest = stat_text[stat_text.rindex(")") + 2 :].split()
    return int(rest[22 - 3])


def find_free_first_address(
    size: int,
    port: int = DEFAULT_PORT,
    candidates: Iterable[str] | None = None,
) -> str:
    """Return a first address whose ``size`` consecutive addresses all have ``port`` free."""
    if candidates is None:
        blocks = list(FLEET_BLOCKS)
        # Start somewhere different per process so parallel test runs rarely collide.
        start = os.getpid() % len(blocks)
        candidates = [f"127.0.{b}.11" for b in blocks[start:] + blocks[:start]]
    for first in candidates:
        if all(_port_free(h.address, port) for h in fleet_hosts("probe", size, first, port)):
            return first
    raise FleetError(f"no block of {size} loopback addresses with port {port} free")


# --------------------------------------------------------------------------- /proc helpers


def process_start_time(pid: int) -> int | None:
    """Return the start time of ``pid`` or None when it does not exist."""
    try:
        return parse_start_time(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError, IndexError):
        return None


def _process_state(pid: int) -> str | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()[0]


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def mount_namespace(pid: int | str) -> str | None:
    """Return ``mnt:[inode]`` of ``pid`` (or ``"self"``), None when unreadable."""
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _alive(pid: int, start_time: int) -> bool:
    """Tell whether ``pid`` is still the process started at ``start_time`` (not a zombie)."""
    return process_start_time(pid) == start_time and _process_state(pid) not in (None, "Z", "X")


def _all_pids() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def _identity(path: Path | str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _port_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def _accepts(address: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def real_root_mounts() -> list[str]:
    """Return the mount points of this process's mount namespace."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        # Field 5 is the mount point, octal-escaped.
        points.append(fields[4].encode().decode("unicode_escape"))
    return points


# Children started by any Fleet of this process, so that they are reaped (no zombies).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _reap(pid: int) -> None:
    proc = _CHILDREN.get(pid)
    if proc is not None and proc.poll() is not None:
        del _CHILDREN[pid]


# --------------------------------------------------------------------------- the fleet


class Fleet:
    """A set of loopback SSH hosts whose state lives in ``state_dir``."""

    def __init__(
        self,
        state_dir: Path | str,
        size: int,
        *,
        name: str = DEFAULT_NAME,
        first_address: str = DEFAULT_FIRST_ADDRESS,
        port: int = DEFAULT_PORT,
        data_root: str = DEFAULT_DATA_ROOT,
        isolate_etc: bool = True,
        ready_timeout: float = 30.0,
    ) -> None:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"invalid fleet name {name!r}")
        if not os.path.isabs(data_root) or os.path.normpath(data_root) == "/":
            raise ValueError(f"data_root must be an absolute path other than /: {data_root!r}")
        self.state_dir = Path(state_dir).absolute()
        self.size = size
        self.name = name
        self.first_address = first_address
        self.port = port
        self.data_root = os.path.normpath(data_root)
        self.isolate_etc = isolate_etc
        self.ready_timeout = ready_timeout
        self._hosts = fleet_hosts(name, size, first_address, port)

    # ---------------------------------------------------------------- paths and views

    @classmethod
    def from_state(cls, state_dir: Path | str) -> Fleet:
        """Rebuild the fleet recorded in ``state_dir`` (FileNotFoundError if none)."""
        state = json.loads((Path(state_dir) / "state.json").read_text())
        return cls(
            state_dir,
            state["size"],
            name=state["name"],
            first_address=state["first_address"],
            port=state["port"],
            data_root=state["data_root"],
            isolate_etc=state["isolate_etc"],
        )

    @property
    def hosts(self) -> list[FleetHost]:
        """The hosts of this fleet, ``<name>-1`` first."""
        return list(self._hosts)

    @property
    def inventory_path(self) -> Path:
        """The YAML inventory written by :meth:`up`."""
        return self.state_dir / "inventory.yml"

    @property
    def private_key_path(self) -> Path:
        """The fleet's client key, authorized for root on every host."""
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts_path(self) -> Path:
        """A known_hosts file with the key of every host."""
        return self.state_dir / "known_hosts"

    @property
    def control_dir(self) -> Path:
        """Where Ansible's ssh control sockets go."""
        return control_dir_for(self.state_dir)

    @property
    def _state_path(self) -> Path:
        return self.state_dir / "state.json"

    def host(self, host: FleetHost | str | int) -> FleetHost:
        """Resolve a host given as object, name or 1-based index."""
        if isinstance(host, FleetHost):
            return host
        for h in self._hosts:
            if host in (h.name, h.index):
                return h
        raise KeyError(f"no host {host!r} in fleet {self.name}")

    def _host_base(self, host: FleetHost | str) -> Path:
        name = host.name if isinstance(host, FleetHost) else host
        return self.state_dir / "hosts" / name

    def host_dir(self, host: FleetHost | str | int) -> Path:
        """Return the directory on the real filesystem backing ``data_root`` on ``host``."""
        return self._host_base(self.host(host)) / "data"

    # ---------------------------------------------------------------- state file

    def _load_state(self) -> dict[str, Any]:
        try:
            state = json.loads(self._state_path.read_text())
        except FileNotFoundError:
            return {"hosts": {}}
        if state.get("version") != STATE_VERSION:
            raise FleetError(f"{self._state_path}: unknown state version {state.get('version')}")
        return state

    def _save_state(self, hosts: dict[str, dict[str, Any]]) -> None:
        state = {
            "version": STATE_VERSION,
            "name": self.name,
            "size": self.size,
            "first_address": self.first_address,
            "port": self.port,
            "data_root": self.data_root,
            "isolate_etc": self.isolate_etc,
            "hosts": hosts,
        }
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        tmp.replace(self._state_path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.state_dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # ---------------------------------------------------------------- bring-up

    def up(self) -> Fleet:
        """Start every host that is not running (reusing live ones) and write the inventory."""
        check_prerequisites()
        with self._locked():
            state = self._load_state()
            records: dict[str, dict[str, Any]] = dict(state.get("hosts", {}))
            self._prepare_shared()
            # Hosts recorded but no longer part of this fleet (smaller size, moved address).
            for name, rec in list(records.items()):
                wanted = next((h for h in self._hosts if h.name == name), None)
                if wanted is None or (rec["address"], rec["port"]) != (wanted.address, wanted.port):
                    self._stop_host(name, rec)
                    del records[name]
            spawned: list[str] = []
            try:
                # Copying /etc is the slow part of a first bring-up: do the hosts at once.
                with ThreadPoolExecutor(max_workers=_workers(len(self._hosts))) as pool:
                    list(pool.map(self._prepare_host, self._hosts))
                self._write_known_hosts()
                for h in self._hosts:
                    old = records.get(h.name)
                    if old is not None and self._sshd_alive(old):
                        continue
                    if old is not None:
                        self._stop_host(h.name, old)  # leftovers of a dead host
                    records[h.name] = self._spawn(h)
                    spawned.append(h.name)
                    self._save_state(records)
                self._wait_ready(records)
                for h in self._hosts:
                    self._record_namespace(h, records[h.name])
                self._save_state(records)
            except BaseException:
                for name in spawned:
                    with contextlib.suppress(Exception):
                        self._stop_host(name, records[name])
                    records.pop(name, None)
                self._save_state(records)
                raise
            self.control_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._write(self.inventory_path, self._render_inventory())
        return self

    def _render_inventory(self) -> str:
        return render_inventory(
            name=self.name,
            hosts=self._hosts,
            private_key=self.private_key_path,
            known_hosts=self.known_hosts_path,
            control_dir=self.control_dir,
            data_root=self.data_root,
        )

    @staticmethod
    def _write(path: Path, text: str, mode: int = 0o644) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.chmod(mode)
        tmp.replace(path)

    @staticmethod
    def _keygen(path: Path, comment: str) -> None:
        if path.exists() and path.with_name(path.name + ".pub").exists():
            return
        for stale in (path, path.with_name(path.name + ".pub")):
            stale.unlink(missing_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            check=True,
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )

    def _prepare_shared(self) -> None:
        self.state_dir.chmod(0o700)
        self._keygen(self.private_key_path, f"tradeops-fleet-{self.name}")
        pub = self.private_key_path.with_name("id_ed25519.pub").read_text()
        self._write(self.state_dir / "authorized_keys", pub, 0o600)
        root = Path(self.data_root)
        if not root.is_dir():
            if root.exists() or root.is_symlink():
                raise FleetError(f"data_root {root} exists and is not a directory")
            root.mkdir(parents=True, mode=0o755)  # an empty mount point, left in place
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)

    def _prepare_host(self, h: FleetHost) -> None:
        base = self._host_base(h)
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        (base / "data").mkdir(exist_ok=True)
        (base / "root").mkdir(exist_ok=True, mode=0o700)
        self._keygen(base / "ssh_host_ed25519_key", f"{h.name}-host")
        config = render_sshd_config(
            address=h.address,
            port=h.port,
            host_key=base / "ssh_host_ed25519_key",
            pid_file=base / "sshd.pid",
            authorized_keys=self.state_dir / "authorized_keys",
        )
        self._write(base / "sshd_config", config)
        if self.isolate_etc and not (base / "etc").is_dir():
            staging = base / "etc.partial"
            if staging.exists():
                shutil.rmtree(staging)
            subprocess.run(["cp", "-a", "/etc", str(staging)], check=True, capture_output=True)
            (staging / "hostname").write_text(h.name + "\n")
            set_root_home(staging / "passwd", base / "root")
            with open(staging / "hosts", "a") as hosts_file:
                hosts_file.write(f"\n{h.address}\t{h.name}\n")
            staging.rename(base / "etc")

    def _write_known_hosts(self) -> None:
        lines = []
        for h in self._hosts:
            pub = (self._host_base(h) / "ssh_host_ed25519_key.pub").read_text().split()
            lines.append(f"[{h.address}]:{h.port} {pub[0]} {pub[1]}")
        self._write(self.known_hosts_path, "\n".join(lines) + "\n")

    def _spawn(self, h: FleetHost) -> dict[str, Any]:
        base = self._host_base(h)
        script = render_host_script(
            data_dir=base / "data",
            data_root=self.data_root,
            etc_dir=base / "etc" if self.isolate_etc else None,
            hostname=h.name,
            sshd_config=base / "sshd_config",
        )
        argv = ["unshare", "--mount", "--uts", "--propagation", "private", "--"]
        argv += ["/bin/sh", "-c", script]
        with open(base / "sshd.log", "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        _CHILDREN[proc.pid] = proc
        start = process_start_time(proc.pid)
        if start is None:
            proc.wait(timeout=5)
            raise FleetError(f"{h.name}: sshd exited at once; see {base / 'sshd.log'}")
        return {
            "address": h.address,
            "port": h.port,
            "pid": proc.pid,
            "start_time": start,
            "mnt_ns": None,
            "sshd_config": str(base / "sshd_config"),
        }

    def _ssh_argv(self, h: FleetHost, command: str, connect_timeout: int = 5) -> list[str]:
        return [
            "ssh",
            "-F",
            "/dev/null",
            *ssh_client_options(self.known_hosts_path, self.private_key_path),
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={connect_timeout}",
            "-o",
            "ControlMaster=no",
            "-o",
            "ControlPath=none",
            "-o",
            "LogLevel=ERROR",
            "-p",
            str(h.port),
            f"root@{h.address}",
            command,
        ]

    def _wait_ready(self, records: dict[str, dict[str, Any]]) -> None:
        with ThreadPoolExecutor(max_workers=_workers(len(self._hosts))) as pool:
            results = list(pool.map(lambda h: self._wait_one(h, records[h.name]), self._hosts))
        failures = [e for e in results if e]
        if failures:
            raise FleetError("; ".join(failures))

    def _wait_one(self, h: FleetHost, rec: dict[str, Any]) -> str | None:
        """Wait until ``h`` accepts TCP and ``ssh true``; return an error text or None."""
        deadline = time.monotonic() + self.ready_timeout
        log = self._host_base(h) / "sshd.log"
        last = "never accepted a connection"
        for _attempt in range(int(self.ready_timeout / POLL_S) + 1):
            if not _alive(rec["pid"], rec["start_time"]):
                _reap(rec["pid"])
                return f"{h.name}: sshd exited during start-up: {_tail(log)}"
            if _accepts(h.address, h.port):
                result = subprocess.run(
                    self._ssh_argv(h, "true", connect_timeout=3),
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=15,
                    check=False,
                )
                if result.returncode == 0:
                    return None
                last = f"ssh failed: {result.stderr.strip()}"
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
        return f"{h.name}: not ready after {self.ready_timeout:.0f}s ({last}); log: {_tail(log)}"

    def _record_namespace(self, h: FleetHost, rec: dict[str, Any]) -> None:
        exe = ""
        with contextlib.suppress(OSError):
            exe = os.readlink(f"/proc/{rec['pid']}/exe")
        ns = mount_namespace(rec["pid"])
        if exe != SSHD or ns is None or ns == mount_namespace("self"):
            raise FleetError(f"{h.name}: pid {rec['pid']} is not an sshd in its own namespace")
        if rec.get("mnt_ns") not in (None, ns):
            raise FleetError(f"{h.name}: sshd changed mount namespace ({rec['mnt_ns']} -> {ns})")
        rec["mnt_ns"] = ns

    # ---------------------------------------------------------------- teardown

    def _sshd_alive(self, rec: dict[str, Any]) -> bool:
        """Tell whether the recorded pid is still this host's sshd (start time, cmdline)."""
        pid, start = rec.get("pid"), rec.get("start_time")
        if not isinstance(pid, int) or not isinstance(start, int) or not _alive(pid, start):
            return False
        if not any(rec["sshd_config"] in arg for arg in _cmdline(pid)):
            return False
        ns = rec.get("mnt_ns")
        return ns is None or mount_namespace(pid) == ns

    def _members(self, name: str, rec: dict[str, Any]) -> dict[int, int]:
        """Return the processes living in host ``name``: pid -> start time.

        A process belongs to the host if its mount namespace is the one recorded for
        the host's sshd, confirmed by it seeing the host's data directory at
        ``data_root`` (guards against the reuse of a dead namespace's inode). A
        process that made a nested mount namespace inside the host is caught by the
        same data_root check.
        """
        own = mount_namespace("self")
        recorded = rec.get("mnt_ns")
        data_id = _identity(self._host_base(name) / "data")
        # Without the data dir to confirm with, trust the namespace only while the
        # host's own sshd (pid + start time + cmdline checked) still holds it.
        trust_ns = data_id is None and recorded is not None and self._sshd_alive(rec)
        members: dict[int, int] = {}
        for pid in _all_pids():
            ns = mount_namespace(pid)
            if ns is None or ns == own:
                continue
            if data_id is not None:
                # Recorded namespace, or one nested inside the host: both see the
                # host's data dir at data_root.
                if _identity(f"/proc/{pid}/root{self.data_root}") != data_id:
                    continue
            elif not (trust_ns and ns == recorded):
                continue
            start = process_start_time(pid)
            if start is not None:
                members[pid] = start
        return members

    def stop_host(self, host: FleetHost | str | int) -> None:
        """Stop one host (its sshd and everything in its namespace): it becomes unreachable.

        Its data and state stay, so ``up()`` restarts it and ``down()`` still cleans up.
        Tests use it to lose a host in the middle of a deploy.
        """
        h = self.host(host)
        rec = self._load_state().get("hosts", {}).get(h.name)
        if rec is not None:
            self._stop_host(h.name, rec)

    def _stop_host(self, name: str, rec: dict[str, Any]) -> None:
        """Stop every process in the host's namespace, then its sshd: TERM, wait, KILL.

        Session processes go first so that the listening sshd reaps them (no
        zombies left for init); a last round takes whatever is left at once.
        """
        for round_ in range(6):
            listener = {rec["pid"]: rec["start_time"]} if self._sshd_alive(rec) else {}
            others = {
                p: s
                for p, s in self._members(name, rec).items()
                if p not in listener and _alive(p, s)
            }
            if not others and not listener:
                break
            targets = (others | listener) if round_ == 5 else (others or listener)
            for sig, wait in ((signal.SIGTERM, TERM_WAIT_S), (signal.SIGKILL, KILL_WAIT_S)):
                for pid, start in targets.items():
                    if _alive(pid, start):
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, sig)
                if _wait_gone(targets, wait):
                    break
        _reap(rec.get("pid", -1))
        left = {p: s for p, s in self._members(name, rec).items() if _alive(p, s)}
        if self._sshd_alive(rec):
            left[rec["pid"]] = rec["start_time"]
        if left:
            raise FleetError(f"{name}: processes survived SIGKILL: {sorted(left)}")

    def down(self, *, keep_data: bool = False) -> None:
        """Stop every host and remove the fleet's state (the data dirs too unless kept)."""
        if not self.state_dir.exists():
            return
        with self._locked():
            state = self._load_state()
            records = state.get("hosts", {})
            names = set(records) | {h.name for h in self._hosts}
            hosts_dir = self.state_dir / "hosts"
            if hosts_dir.is_dir():
                names |= {p.name for p in hosts_dir.iterdir() if p.is_dir()}
            for name in sorted(names):
                self._stop_host(name, records.get(name, {}))
                records.pop(name, None)
                self._save_state(records)
            self._remove_state(sorted(names), keep_data=keep_data)

    def _remove_state(self, names: list[str], *, keep_data: bool) -> None:
        mounts = real_root_mounts()
        prefix = str(self.state_dir) + "/"
        if any(m == str(self.state_dir) or m.startswith(prefix) for m in mounts):
            raise FleetError(f"something is mounted under {self.state_dir}; not removing it")
        for name in names:
            base = self._host_base(name)
            if not base.is_dir():
                continue
            for entry in base.iterdir():
                if keep_data and entry.name == "data":
                    continue
                _remove(entry)
            with contextlib.suppress(OSError):
                base.rmdir()
        with contextlib.suppress(OSError):
            (self.state_dir / "hosts").rmdir()
        for fname in (
            "inventory.yml",
            "known_hosts",
            "authorized_keys",
            "id_ed25519",
            "id_ed25519.pub",
            "state.json",
            "state.tmp",
            ".lock",
        ):
            (self.state_dir / fname).unlink(missing_ok=True)
        control = self.control_dir
        if control.is_dir():
            shutil.rmtree(control, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.state_dir.rmdir()

    # ---------------------------------------------------------------- observation

    def status(self) -> list[dict[str, Any]]:
        """Return one dict per host: name, address, port, pid, start_time, mnt_ns, running, ..."""
        try:
            records = self._load_state().get("hosts", {})
        except FileNotFoundError:
            records = {}
        rows = []
        for h in self._hosts:
            rec = records.get(h.name)
            running = rec is not None and self._sshd_alive(rec)
            rows.append(
                {
                    "name": h.name,
                    "address": h.address,
                    "port": h.port,
                    "pid": rec["pid"] if rec else None,
                    "start_time": rec["start_time"] if rec else None,
                    "mnt_ns": rec.get("mnt_ns") if rec else None,
                    "running": running,
                    "accepting": running and _accepts(h.address, h.port),
                    "data_dir": str(self.host_dir(h)),
                }
            )
        return rows

    def ssh(
        self,
        host: FleetHost | str | int,
        command: str | Sequence[str],
        *,
        timeout: float = 60.0,
        check: bool = False,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` as root on ``host`` over ssh; text output captured."""
        if not isinstance(command, str):
            command = shlex.join(command)
        return subprocess.run(
            self._ssh_argv(self.host(host), command),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def __enter__(self) -> Fleet:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()


def _workers(count: int) -> int:
    return max(1, min(count, 16))


def _wait_gone(targets: dict[int, int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    for _attempt in range(int(timeout / POLL_S) + 1):
        for pid in targets:
            _reap(pid)
        if not any(_alive(p, s) for p, s in targets.items()):
            return True
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    return False


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return
    if os.path.ismount(path):
        raise FleetError(f"{path} is a mount point; not removing it")
    try:
        shutil.rmtree(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"
