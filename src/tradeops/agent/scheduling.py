"""The agent's CPU scheduling: a real-time policy and CPU affinity, applied by the agent itself.

A kill switch that a CPU-hogging strategy can starve is no kill switch: at the
normal policy a busy process on the same core delays the agent's wake-up by a
whole time slice (milliseconds; measured in ``make bench``). The config's
``scheduling`` section asks for a real-time policy (``fifo`` or ``rr``, with a
priority) and, optionally, the CPUs to run on (a housekeeping core, away from
the strategies' isolated cores)::

    scheduling: {policy: fifo, priority: 10, cpus: [0]}

The agent applies it to every one of its threads at start, whatever started
it (systemd or supervisord), with ``SCHED_RESET_ON_FORK`` so that a command it
runs (``systemctl``, ``supervisorctl``) starts at the normal policy. The flag
resets new threads too (a thread is a clone): a thread on the halt's path
(the Unix socket's accept thread) applies the policy to itself when it starts
(``apply(config, this_thread=True)``); the helper threads of ``to_thread``
stay at the normal policy, which is what they need. The
kernel's real-time throttling (``/proc/sys/kernel/sched_rt_runtime_us``,
95% by default) still leaves the core to others if the agent ever spins.

``cpu_latency_us`` (optional) holds a PM QoS request on
``/dev/cpu_dma_latency`` for as long as the agent runs: the kernel keeps the
CPUs out of idle states slower to leave than that (0: poll, never halt), and
drops the request when the agent's file closes, crash included. An idle core
otherwise takes tens of microseconds to wake for a halt (a VM's vCPU longer:
measured in ``make bench``); it costs power, which is what trading hosts
trade it for (tuned's latency-performance profile does the same host-wide).

A policy the kernel refuses (no ``CAP_SYS_NICE``, CPUs that do not exist)
does not stop the agent: an agent at the normal policy still protects the
host far better than none. The refusal is logged, and ``status`` shows what
was applied and what was not.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any

POLICIES = {"other": os.SCHED_OTHER, "fifo": os.SCHED_FIFO, "rr": os.SCHED_RR}
REAL_TIME = frozenset({"fifo", "rr"})
CPU_LATENCY_DEVICE = "/dev/cpu_dma_latency"
MAX_CPU_LATENCY_US = 2_000_000_000  # the kernel's request is a signed 32-bit count of us


@dataclass(frozen=True, slots=True)
class SchedulingConfig:
    """How the agent runs: thread policy and placement, and its PM QoS request.

    ``policy`` (other, fifo, rr), its ``priority`` (1-99 for fifo and rr),
    ``nice``, ``cpus``; ``cpu_latency_us``, held while the agent runs (None: none).
    """

    policy: str = "other"
    priority: int = 0
    nice: int | None = None
    cpus: frozenset[int] | None = None
    cpu_latency_us: int | None = None

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        if self.policy in REAL_TIME and not 1 <= self.priority <= 99:
            raise ValueError(f"a {self.policy} policy needs a priority from 1 to 99")
        if self.policy not in REAL_TIME and self.priority:
            raise ValueError("priority applies to the fifo and rr policies only")
        if self.nice is not None and self.policy in REAL_TIME:
            raise ValueError("nice applies to the other policy only")
        if self.cpus is not None and not self.cpus:
            raise ValueError("cpus must name at least one CPU")
        if self.cpu_latency_us is not None and not 0 <= self.cpu_latency_us <= MAX_CPU_LATENCY_US:
            raise ValueError(f"cpu_latency_us must be from 0 to {MAX_CPU_LATENCY_US}")

    @property
    def default(self) -> bool:
        """True when nothing is asked: the agent keeps what its service manager gave it."""
        return self.policy == "other" and self.nice is None and self.cpus is None


def _threads() -> list[int]:
    try:
        return sorted(int(tid) for tid in os.listdir("/proc/self/task"))
    except OSError:
        return [0]


def apply(config: SchedulingConfig, this_thread: bool = False) -> dict[str, Any]:
    """Apply ``config`` to every thread of this process (or the calling one); say what holds.

    The answer: ``policy``, ``priority``, ``cpus`` as now in force for the
    calling thread, and ``errors`` (a text per refused step; empty when all held).
    """
    errors: list[str] = []
    if not config.default:
        for tid in [0] if this_thread else _threads():
            if config.cpus is not None:
                try:
                    os.sched_setaffinity(tid, config.cpus)
                except OSError as exc:
                    errors.append(f"cpus {sorted(config.cpus)}: {exc.strerror or exc}")
            try:
                param = os.sched_param(config.priority)
                os.sched_setscheduler(tid, POLICIES[config.policy] | os.SCHED_RESET_ON_FORK, param)
            except OSError as exc:
                errors.append(f"policy {config.policy} {config.priority}: {exc.strerror or exc}")
            if config.nice is not None:
                try:
                    os.setpriority(os.PRIO_PROCESS, tid, config.nice)
                except OSError as exc:
                    errors.append(f"nice {config.nice}: {exc.strerror or exc}")
    return {**current(), "errors": sorted(set(errors))}


def hold_cpu_latency(us: int, device: str | None = None) -> tuple[int | None, str | None]:
    """Open ``device`` (``CPU_LATENCY_DEVICE``) and write the request ``us``: the fd, or why not.

    The request holds while the fd is open: keep it for the process's life.
    """
    device = device or CPU_LATENCY_DEVICE
    try:
        fd = os.open(device, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        return None, f"cpu_latency_us {us}: {device}: {exc.strerror or exc}"
    try:
        os.write(fd, struct.pack("=i", us))
    except OSError as exc:
        os.close(fd)
        return None, f"cpu_latency_us {us}: {device}: {exc.strerror or exc}"
    return fd, None


def current() -> dict[str, Any]:
    """The calling thread's policy, priority and CPUs."""
    policy = os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK
    name = next((k for k, v in POLICIES.items() if v == policy), str(policy))
    return {
        "policy": name,
        "priority": os.sched_getparam(0).sched_priority,
        "cpus": sorted(os.sched_getaffinity(0)),
    }
