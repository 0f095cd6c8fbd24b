"""Trip to HALTED as a strategy sees it, and the agent's idle cost (parts of make bench).

``trip_to_halted_us``: a real agent (``tradeops agent run``, a subprocess on a
temporary root) and a separate observer process that maps the trading-state
file as a strategy does (``TradingStateReader``) and spins on ``current()``.
For each trial the benchmark arms the observer (a byte on a pipe: it spins
until the next change, then waits), takes ``time.monotonic_ns()``, connects
to the agent's Unix socket and sends ``halt`` (a fresh connection, as
``tradeops agent halt`` makes); the observer writes the ``time.monotonic_ns()``
at which it first reads HALTED (CLOCK_MONOTONIC: one clock for every process
of the host). Then a reset (who, why), and the observer reads ACTIVE again
before the next trial.

``trip_to_halted_under_load_us``: the same with a CPU hog (a busy Python
loop at the normal policy, placed by the kernel) per core, started and
stopped by PID.

Placement, as on a production host (docs/agent.md, "Scheduling"): the agent
runs with its config's ``scheduling: {policy: fifo, priority: 10, cpus: [0],
cpu_latency_us: 0}`` (CPU 0 the housekeeping core; a PM QoS request that keeps
idle cores polling instead of halting, measured without it as
``..._without_cpu_latency``); the observer is a latency-critical strategy on
its own core: pinned to CPU 1 at ``SCHED_FIFO`` priority 1 (it spins only
while armed, so the kernel's real-time throttling never stops it); the
halting client (this process) runs on CPU 0 at ``SCHED_FIFO`` priority 5,
below the agent, with ``SCHED_RESET_ON_FORK`` (the hogs it starts are normal
processes): without it the hog delays the harness's own send by a time slice
and the figure measures the harness. The same placement holds for the idle
run. ``trips(..., strategy_fifo=False)`` keeps the observer at the normal
policy on CPU 1: under load it shares its core with a hog and reads HALTED
only when the kernel runs it again, a time slice later (milliseconds: the
strategy's own starvation, not the agent's; ``..._strategy_normal_policy``).
``trips(..., placed=False)`` measures with everything at the normal policy on
any CPU, for comparison (``..._default_scheduling``).

``agent_idle``: the agent's CPU share (utime + stime from /proc over a
window) and RSS while nobody talks to it; its liveness writer still beats.

Bounded: ``n`` trials, each wait with a time limit; every process started
here is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from tradeops.agent.client import AgentClient, checked  # noqa: E402
from tradeops.agent.protocol import Command, encode_request  # noqa: E402
from tradeops.tradingstate import TradingState  # noqa: E402

PYTHON = sys.executable
START_TIMEOUT_S = 20.0
STEP_TIMEOUT_S = 5.0

# Armed by a byte on its "go" pipe, it says so, spins on current() until the
# state changes, reports the change and waits for the next byte: it spins only
# while a trial is on, so that at a real-time policy it never meets the
# kernel's real-time throttling (a process spinning for good would be
# throttled 50 ms in every second). The harness starts a trial once the
# observer is spinning: its own wake-up (an idle CPU's, tens of microseconds)
# is not part of the figure, as a strategy that trades is already running.
OBSERVER = r"""
import os, sys, time
from tradeops_client.tradingstate import TradingStateReader
reader = TradingStateReader(sys.argv[1])
out, go = int(sys.argv[2]), int(sys.argv[4])
deadline = time.monotonic() + float(sys.argv[3])
last = reader.current()
os.write(out, f"{last.value} {time.monotonic_ns()}\n".encode())
while time.monotonic() < deadline and os.read(go, 1):
    os.write(out, b"armed 0\n")
    i = 0
    while True:
        state = reader.current()
        if state is not last:
            os.write(out, f"{state.value} {time.monotonic_ns()}\n".encode())
            last = state
            break
        i += 1
        if i & 0xFFFF == 0 and time.monotonic() > deadline:
            break
"""

HOG = r"""
import sys, time
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    pass
"""


def summary(values_ns: list[int], unit_ns: float = 1e3) -> dict[str, Any]:
    """{p50, p99, max, n} in units of ``unit_ns`` (1e3: microseconds, 1e6: milliseconds)."""
    ordered = sorted(values_ns)
    n = len(ordered)

    def pct(p: float) -> float:
        return round(ordered[min(n - 1, int(p * n))] / unit_ns, 1)

    return {"p50": pct(0.50), "p99": pct(0.99), "max": round(ordered[-1] / unit_ns, 1), "n": n}


@dataclass
class AgentProc:
    """A running ``tradeops agent run`` and its root."""

    proc: subprocess.Popen[bytes]
    root: Path

    @property
    def socket(self) -> Path:
        return self.root / "run" / "agent.sock"

    @property
    def state_file(self) -> Path:
        return self.root / "state" / "trading_state"


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = str(REPO / "src") + os.pathsep + out.get("PYTHONPATH", "")
    return out


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL, by PID."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def agent(tmp: Path, scheduling: str = "") -> Iterator[AgentProc]:
    """Start an agent on a fresh root under ``tmp``; stop it by PID on exit.

    ``scheduling``: the config's ``scheduling`` section as inline YAML, if any.
    """
    root = tmp / "root"
    (root / "state").mkdir(parents=True)
    (root / "run").mkdir()
    config = tmp / "agent.yml"
    config.write_text(
        f"format: 1\nroot: {root}\nunix:\n  allowed_uids: [{os.getuid()}]\n"
        f"log: {tmp / 'agent.jsonl'}\n" + (f"scheduling: {scheduling}\n" if scheduling else ""),
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [PYTHON, "-m", "tradeops.cli.main", "agent", "run", "--config", str(config)],
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "agent.stderr", "wb"),  # noqa: SIM115 - closed with the process
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        sock = root / "run" / "agent.sock"
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the agent did not start: {(tmp / 'agent.stderr').read_text()}")
            time.sleep(0.05)
        yield AgentProc(proc, root)
    finally:
        stop(proc)


@contextlib.contextmanager
def hogs(count: int, seconds: float) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` busy processes for at most ``seconds``; stopped by PID on exit."""
    procs = [subprocess.Popen([PYTHON, "-c", HOG, str(seconds)]) for _unused in range(count)]
    try:
        yield procs
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(5)


class Observer:
    """The strategy stand-in: a process spinning on the trading-state file when armed."""

    def __init__(
        self, state_file: Path, seconds: float, cpu: int | None = None, fifo: int = 0
    ) -> None:
        read_fd, write_fd = os.pipe()
        go_read, self._go = os.pipe()
        self.proc = subprocess.Popen(
            [PYTHON, "-c", OBSERVER, str(state_file), str(write_fd), str(seconds), str(go_read)],
            env=env(),
            pass_fds=(write_fd, go_read),
        )
        os.close(write_fd)
        os.close(go_read)
        self.placement = "normal policy, any CPU"
        if cpu is not None:
            os.sched_setaffinity(self.proc.pid, {cpu})
            self.placement = f"CPU {cpu}, normal policy"
        if fifo:
            try:
                os.sched_setscheduler(self.proc.pid, os.SCHED_FIFO, os.sched_param(fifo))
                self.placement = f"CPU {cpu}, SCHED_FIFO {fifo}"
            except OSError as exc:  # not root: measured anyway, and said
                self.placement += f" (SCHED_FIFO refused: {exc.strerror})"
        self._fd = read_fd
        self._buf = b""

    def arm(self) -> None:
        """Have it spin until it sees the next change; return once it spins."""
        os.write(self._go, b"g")
        line = self._line(STEP_TIMEOUT_S)
        if line != b"armed 0":
            raise RuntimeError(f"the observer answered {line!r} when armed")

    def next(self, timeout_s: float = STEP_TIMEOUT_S) -> tuple[int, int]:
        """The next (state value, monotonic_ns) the observer saw."""
        state, stamp = self._line(timeout_s).split()
        return int(state), int(stamp)

    def _line(self, timeout_s: float) -> bytes:
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._fd], [], [], left)[0]:
                raise TimeoutError("the observer saw no change")
            chunk = os.read(self._fd, 4096)
            if not chunk:
                raise RuntimeError("the observer exited")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def close(self) -> None:
        stop(self.proc)
        os.close(self._fd)
        os.close(self._go)


AGENT_SCHEDULING = "{policy: fifo, priority: 10, cpus: [0], cpu_latency_us: 0}"
AGENT_SCHEDULING_NO_PM_QOS = "{policy: fifo, priority: 10, cpus: [0]}"
CLIENT_PRIORITY = 5
STRATEGY_PRIORITY = 1


@contextlib.contextmanager
def placed_client(placed: bool) -> Iterator[str]:
    """This process on CPU 0 at SCHED_FIFO 5 (children reset on fork); undone on exit."""
    if not placed:
        yield "normal policy, any CPU"
        return
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    placement = f"CPU 0, SCHED_FIFO {CLIENT_PRIORITY}"
    try:
        policy = os.SCHED_FIFO | os.SCHED_RESET_ON_FORK
        os.sched_setscheduler(0, policy, os.sched_param(CLIENT_PRIORITY))
    except OSError as exc:  # not root: measured anyway, and said
        placement = f"CPU 0, normal policy (SCHED_FIFO refused: {exc.strerror})"
    try:
        yield placement
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        os.sched_setaffinity(0, affinity)


def trips(
    n: int,
    load: bool = False,
    placed: bool = True,
    strategy_fifo: bool = True,
    pm_qos: bool = True,
) -> dict[str, Any]:
    """``n`` halts over the Unix socket, each timed until the observer reads HALTED.

    ``placed``: the agent, the client and the observer placed as on a
    production host (else all at the normal policy, on any CPU);
    ``strategy_fifo``: the observer at ``SCHED_FIFO`` 1 on its core when placed
    (else at the normal policy there, sharing it with a hog under load);
    ``pm_qos``: the agent holds ``cpu_latency_us: 0`` when placed.
    """
    cores = os.cpu_count() or 1
    placed = placed and cores >= 2
    budget_s = 60 + n * 0.05
    scheduling = ""
    if placed:
        scheduling = AGENT_SCHEDULING if pm_qos else AGENT_SCHEDULING_NO_PM_QOS
    with (
        tempfile.TemporaryDirectory(prefix="bench-ks-") as tmpdir,
        agent(Path(tmpdir), scheduling) as ag,
    ):
        client = AgentClient(socket_path=ag.socket, timeout_s=STEP_TIMEOUT_S)
        applied = checked(client.request(Command.STATUS, who="bench")).result or {}
        fifo = STRATEGY_PRIORITY if placed and strategy_fifo else 0
        observer = Observer(ag.state_file, budget_s, cpu=1 if placed else None, fifo=fifo)
        samples: list[int] = []
        try:
            state, _unused = observer.next()  # its first read, before or after the reset
            checked(client.request(Command.RESET, who="bench", reason="start"))
            if state != TradingState.ACTIVE:
                observer.arm()
                state, _unused = observer.next()
            if state != TradingState.ACTIVE:
                raise RuntimeError(f"the observer starts in state {state}, not ACTIVE")
            with hogs(cores if load else 0, budget_s), placed_client(placed) as client_placement:
                for i in range(n):
                    halt = encode_request(Command.HALT, who="bench", reason=f"trial {i}")
                    reset = encode_request(Command.RESET, who="bench", reason=f"trial {i}")
                    observer.arm()
                    started = time.monotonic_ns()
                    checked(client.send(halt))
                    state, seen = observer.next()
                    if state != TradingState.HALTED:
                        raise RuntimeError(f"trial {i}: the observer read {state}, not HALTED")
                    samples.append(seen - started)
                    checked(client.send(reset))  # answered once ACTIVE is written
                    observer.arm()
                    state, _unused = observer.next()
                    if state != TradingState.ACTIVE:
                        raise RuntimeError(f"trial {i}: the observer read {state} after the reset")
        finally:
            observer.close()
    figures = summary(samples)
    figures["hogs"] = cores if load else 0
    figures["placement"] = {
        "agent": applied.get("agent", {}).get("scheduling"),
        "observer": observer.placement,
        "client": client_placement,
        "hogs": "normal policy, placed by the kernel",
    }
    return figures


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def agent_idle(window_s: float = 10.0) -> dict[str, Any]:
    """CPU share and RSS of an idle agent (its liveness writer beating every 50 ms)."""
    hz = os.sysconf("SC_CLK_TCK")
    with tempfile.TemporaryDirectory(prefix="bench-ks-idle-") as tmpdir, agent(Path(tmpdir)) as ag:
        time.sleep(1.0)  # past the start-up
        pid = ag.proc.pid
        before, t0 = _cpu_ticks(pid), time.monotonic()
        time.sleep(window_s)
        after, t1 = _cpu_ticks(pid), time.monotonic()
        return {
            "cpu_percent_of_a_core": round(100 * (after - before) / hz / (t1 - t0), 2),
            "rss_mib": _rss_mib(pid),
            "window_s": window_s,
        }
