"""Benchmark of the Knight-safe deploy on the loopback SSH fleet.

Brings up 8 loopback hosts, bootstraps them and starts a simulator on each
(not timed), then measures with a ~20 MB, ~2,000-file artifact:

* ``deploy_wall_s``: wall time of ``ansible-playbook tradeops.algo.deploy``
  to 1, 4 and 8 hosts, median of ``RUNS`` runs, each run a new release. As in
  real life, consecutive releases share most files (here the 2,000 payload
  files; the REVISION and version files differ), which staging hard-links
  from the active release after hashing them;
* ``deploy_all_files_new_wall_s``: the worst case for staging, 8 hosts, where
  every payload file is new (a fresh random payload per run), so every file is
  written; median of ``COLD_RUNS`` runs;
* ``phases_s``: per-phase wall time for 8 hosts (slowest host per phase,
  median over the runs), from the deploy audit log;
* ``noop_playbook_s``: the fixed cost of an empty playbook on the same 8 hosts;
* ``cpu_s``: CPU seconds the whole machine spent per deploy (controller, sshd and
  every host's work together, from /proc/stat), median per fleet size. The
  loopback hosts share this machine's cores, so ``cpu_s / cores`` is a floor
  under the wall time that a real fleet (one machine per host) does not have;
* ``ansible_cpu_s``: the part of ``cpu_s`` spent by ``ansible-playbook`` itself,
  its workers and their ``ssh`` clients (every process it waited for), median
  per fleet size; the rest is ``sshd``, the ``ssh`` ControlMaster processes and
  the hosts' own work (staging, hashing, the strategies restarting);
* ``ratio_8_to_1_cpu_floor``: ``cpu_s["8"] / cores / deploy_wall_s["1"]``, the
  lowest 8-to-1 ratio any ordering of the same work can reach on this machine.

Writes ``bench/results/deploy.json``. Tears the fleet down (by PID) at the end.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from common import write_result  # noqa: E402

from tradeops.releases.artifact import build_artifact  # noqa: E402
from tradeops.testing.fleet import Fleet  # noqa: E402

RUNS = int(os.environ.get("BENCH_DEPLOY_RUNS", "5"))
COLD_RUNS = max(1, RUNS // 2 + 1)
SIZES = (1, 4, 8)
FILES = 2000
FILE_BYTES = 10 * 1024  # 2,000 x 10 KiB of random bytes: ~20 MB, incompressible
BIN = Path(sys.executable).parent
ROOT = "/srv/tradeops"


def env(audit: Path) -> dict[str, str]:
    e = dict(os.environ)
    e.update(
        ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"),
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        TRADEOPS_AUDIT_DIR=str(audit),
        PATH=f"{BIN}{os.pathsep}{e.get('PATH', '')}",
    )
    return e


def busy_cpu_s() -> float:
    """CPU seconds the machine has spent busy since boot (all cores, /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    """CPU seconds of every finished child process this process has waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def playbook(args: list[str], audit: Path) -> float:
    started = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), *args],
        cwd=REPO,
        env=env(audit),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=600,
    )
    took = time.monotonic() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        raise SystemExit(f"bench: ansible-playbook {' '.join(args[-6:])} failed")
    return took


def make_payload(where: Path, name: str = "payload") -> Path:
    payload = where / name
    for index in range(FILES):
        sub = payload / f"d{index // 100:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{index:04d}.bin").write_bytes(os.urandom(FILE_BYTES))
    return payload


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="tradeops-bench-deploy-"))
    audit = work / "audit"
    print(f"bench: deploy; work dir {work}", flush=True)
    subprocess.run([str(REPO / "scripts/wheelhouse.sh")], check=True, capture_output=True)
    payload = make_payload(work)
    fleet = Fleet(
        Path("/tmp") / f"tob-{os.getpid()}", max(SIZES), name="bench", first_address="127.0.77.11"
    )
    try:
        started = time.monotonic()
        fleet.up()
        print(f"bench: {max(SIZES)} hosts up in {time.monotonic() - started:.1f}s", flush=True)
        extra = {
            "refapp_venue_host": "{{ ansible_host }}",
            "refapp_sender_comp_id": "ACC1_OE",
            "refapp_account": "ACC1",
            "refapp_symbols": ["ESZ5"],
            "refapp_http_bind": "{{ ansible_host }}",
            "refapp_db_dsn": f"sqlite:///{ROOT}/state/refapp.db",
            "refapp_fix_store_dir": f"{ROOT}/state/fix",
            "refapp_trading_state_path": f"{ROOT}/state/trading_state",
            "refapp_log_file": f"{ROOT}/shared/log/refapp.jsonl",
            "simulator_host": "{{ ansible_host }}",
            "tradeops_wheelhouse": str(REPO / "build" / "wheelhouse"),
        }
        vars_file = work / "vars.json"
        vars_file.write_text(json.dumps(extra))
        common = ["-i", str(fleet.inventory_path), "-e", f"@{vars_file}"]
        playbook([*common, "-e", "target_hosts=bench", "tradeops.algo.bootstrap"], audit)
        playbook([*common, "-e", "target_hosts=bench", "tradeops.algo.simulator"], audit)
        # The deploy's plan refuses a host without a live kill-switch agent.
        playbook([*common, "-e", "target_hosts=bench", "tradeops.algo.killswitch_agent"], audit)
        noop = work / "noop.yml"
        noop.write_text("- name: Nothing\n  hosts: bench\n  gather_facts: false\n  tasks: []\n")
        noop_times = [playbook([*common, str(noop)], audit) for _run in range(RUNS)]

        def deploy(
            version: str, size: int, release_payload: Path, audit_run: Path
        ) -> tuple[float, float, float]:
            """Deploy a new release; return its wall time, the machine's CPU-seconds and
            the part of them that ansible-playbook's own process tree spent."""
            built = build_artifact(version, work / "artifacts", payload=release_payload)
            target = "bench" if size == max(SIZES) else f"bench[0:{size - 1}]"
            cpu_before = busy_cpu_s()
            ansible_before = children_cpu_s()
            took = playbook(
                [
                    *common,
                    "-e",
                    f"target_hosts={target}",
                    "-e",
                    f"release_version={version}",
                    "-e",
                    f"release_artifact={built.path}",
                    "tradeops.algo.deploy",
                ],
                audit_run,
            )
            cpu = busy_cpu_s() - cpu_before
            ansible_cpu = children_cpu_s() - ansible_before
            built.path.unlink()
            print(
                f"bench: {version} to {size} host(s): {took:.2f}s, {cpu:.1f} CPU-s"
                f" ({ansible_cpu:.1f} in ansible-playbook)",
                flush=True,
            )
            return took, cpu, ansible_cpu

        walls: dict[str, float] = {}
        cpus: dict[str, float] = {}
        ansible_cpus: dict[str, float] = {}
        phases: dict[str, list[float]] = {}  # phase -> slowest host of each run
        for size in SIZES:
            times = []
            cpu_runs = []
            ansible_runs = []
            for run in range(RUNS):
                audit_run = work / f"audit-{size}-{run}"
                took, cpu, ansible_cpu = deploy(f"{size}.{run}.0", size, payload, audit_run)
                times.append(took)
                cpu_runs.append(cpu)
                ansible_runs.append(ansible_cpu)
                if size == max(SIZES):
                    lines = (audit_run / "deploy-audit.jsonl").read_text().splitlines()
                    records = [json.loads(x) for x in lines]
                    slowest: dict[str, float] = {}
                    for rec in records:
                        phase = rec["phase"]
                        slowest[phase] = max(slowest.get(phase, 0.0), rec["duration_s"])
                    for phase, span in slowest.items():
                        phases.setdefault(phase, []).append(span)
            walls[str(size)] = round(statistics.median(times), 3)
            cpus[str(size)] = round(statistics.median(cpu_runs), 2)
            ansible_cpus[str(size)] = round(statistics.median(ansible_runs), 2)
        cold = [
            deploy(f"9.{run}.0", max(SIZES), make_payload(work, f"payload-new-{run}"), audit)
            for run in range(COLD_RUNS)
        ]
        cores = os.cpu_count() or 1
        figures = {
            "deploy_wall_s": walls,
            "deploy_all_files_new_wall_s": {
                str(max(SIZES)): round(statistics.median(run[0] for run in cold), 3)
            },
            "deploy_all_files_new_cpu_s": {
                str(max(SIZES)): round(statistics.median(run[1] for run in cold), 2)
            },
            "phases_s": {p: round(statistics.median(v), 3) for p, v in phases.items()},
            "noop_playbook_s": round(statistics.median(noop_times), 3),
            "cpu_s": cpus,
            "ansible_cpu_s": ansible_cpus,
            "cores": cores,
            "artifact": {"files": FILES, "bytes": FILES * FILE_BYTES},
            "runs": RUNS,
            "ratio_8_to_1": round(walls["8"] / walls["1"], 3),
            "ratio_8_to_1_cpu_floor": round(cpus["8"] / cores / walls["1"], 3),
        }
        path = write_result("deploy", figures)
        print(json.dumps(figures, indent=2))
        print(f"bench: wrote {path}")
    finally:
        fleet.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
