"""`make demo`: the story a newcomer sees, on this machine (the `local` inventory).

Bootstraps this machine as a trading host, starts the simulated exchange,
deploys release 1.0.0 of the reference strategy, shows it trading, deploys
1.1.0 through the Knight-safe deploy (lock, preflight, snapshot, stage, gate,
cutover, verify, unlock), then shows the two ways a deploy refuses to leave a
host half-done: the gate refusing a tampered artifact before anything is
activated, and a release that fails after cutover being switched back by
itself. Then it installs the kill-switch agent (risk session, drop copy,
breakers) and replays Knight Capital: the strategy switched to a runaway that
ignores the trading state, stopped by the agent alone, the book emptied at the
venue, and an operator reset. It prints a readable timeline. Everything runs
under `.demo/`; `make demo-stop` stops what the demo started (supervisord, and
with it the simulator, the strategy and the agent).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from tradeops.testing.artifacts import rewrite_member

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ROOT = REPO / ".demo" / "srv" / "tradeops"
AUDIT = REPO / ".demo" / "audit"
REFAPP = "http://127.0.0.1:8480/status"
SIM = "http://127.0.0.1:9877/state"
LOGS = ROOT / "shared" / "log"
SYMBOLS = ["ESZ5", "NQZ5"]
# What an operator would set for the reference strategy: it never holds more than 100
# lots a symbol (working orders included) nor sends more than a few orders a second.
DEMO_BREAKERS: dict[str, Any] = {
    "version": 1,
    "exposure": {
        "action": "halt",
        "max_symbol_qty": 150,
        "max_symbol_notional": 5_000_000,
        "max_total_notional": 10_000_000,
    },
    "msg_rate": {"action": "halt", "window_s": 1.0, "max_new_orders": 40},
    "error_burst": {"enabled": False},
}
RUNAWAY = {"ignore_trading_state": True, "rate_per_s": 100}
T0 = time.monotonic()


def say(component: str, text: str) -> None:
    """One timeline line: wall clock, seconds since start, component, text."""
    now = time.strftime("%H:%M:%S")
    print(f"{now}  +{time.monotonic() - T0:6.1f}s  {component:<8} {text}", flush=True)


def banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 70 - len(text)), flush=True)


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(
        ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"),
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        TRADEOPS_AUDIT_DIR=str(AUDIT),
        PATH=f"{BIN}{os.pathsep}{e.get('PATH', '')}",
    )
    return e


def playbook(name: str, *extra: str, expect_failure: bool | None = False) -> str:
    """Run a collection playbook on the local inventory; return its output.

    Stops the demo when the run fails, unless ``expect_failure`` (then a run
    that succeeds stops it); ``None`` accepts either outcome and says which.
    """
    cmd = [str(BIN / "ansible-playbook"), f"tradeops.algo.{name}", "-e", "target_hosts=trading"]
    cmd += list(extra)
    started = time.monotonic()
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    took = time.monotonic() - started
    output = proc.stdout + proc.stderr
    either = expect_failure is None
    if either:
        expect_failure = proc.returncode != 0
    elif (proc.returncode != 0) != expect_failure:
        tail = "\n".join(output.splitlines()[-40:])
        outcome = "FAILED" if proc.returncode else "succeeded, but it should have failed,"
        say("ansible", f"{name} {outcome} after {took:.1f}s:\n{tail}")
        raise SystemExit(1)
    recap = [line for line in proc.stdout.splitlines() if line.startswith("localhost ")]
    say(
        "ansible",
        f"{name} {outcome_text(either, expect_failure)} in {took:.1f}s  "
        f"{recap[-1].split(':', 1)[1].strip() if recap else ''}",
    )
    return output


def outcome_text(either: bool, failed: bool) -> str:
    """How a playbook run ended, in the timeline's words."""
    if not failed:
        return "done"
    return "failed," if either else "failed, as it should,"


def get_json(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback only
            return dict(json.load(resp))
    except (urllib.error.URLError, OSError, ValueError):
        return None


def wait_for(url: str, what: str, check: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    for _attempt in range(int(timeout * 4) + 1):
        last = get_json(url)
        if last is not None and check(last):
            return last
        if time.monotonic() > deadline:
            break
        time.sleep(0.25)
    say("demo", f"timed out waiting for {what}; last answer: {last}")
    raise SystemExit(1)


def show_phases(run_started: float) -> None:
    """Print the deploy phases the deploy recorded in its audit log for the last run."""
    path = AUDIT / "deploy-audit.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    runs = [x for x in lines if x.get("run_id")]
    if not runs:
        return
    last_run = runs[-1]["run_id"]
    for rec in (x for x in runs if x["run_id"] == last_run):
        say(
            "deploy",
            f"phase {rec['phase']:<10} {rec['outcome']:<8} {rec['duration_s']:6.2f}s "
            f"on {rec['host']}  release {rec['release_id']}",
        )


def show_trading(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for _attempt in range(int(seconds) + 1):
        status = get_json(REFAPP) or {}
        sim = get_json(SIM) or {}
        positions = {s: p.get("qty") for s, p in (status.get("positions") or {}).items()}
        say(
            "refapp",
            f"release {status.get('release_id')} mode {status.get('mode')}: "
            f"orders sent {status.get('orders_sent')}, fills {status.get('fills')}, "
            f"working {len(status.get('working_orders') or [])}, positions {positions}",
        )
        say(
            "sim",
            f"orders {sim.get('orders_total')}, fills {sim.get('fills_total')}, "
            f"working {len(sim.get('orders') or [])}",
        )
        if time.monotonic() > deadline:
            break
        time.sleep(2)


def build(version: str, payload: Path | None = None) -> Path:
    out = REPO / "build" / "releases"
    extra = ["--payload", str(payload)] if payload else []
    subprocess.run(
        [
            *(str(BIN / "tradeops"), "release", "build", "--version", version),
            *("--output", str(out), *extra),
        ],
        check=True,
        capture_output=True,
    )
    say("release", f"built refapp {version} -> build/releases/refapp-{version}.tar.gz")
    return out / f"refapp-{version}.tar.gz"


def deploy(version: str, artifact: Path, *extra: str, expect_failure: bool | None = False) -> str:
    started = time.time()
    output = playbook(
        "deploy",
        *("-e", f"release_version={version}", "-e", f"release_artifact={artifact}", *extra),
        expect_failure=expect_failure,
    )
    show_phases(started)
    return output


def quote_failure(output: str, marker: str) -> None:
    """Print the failure message that starts with ``marker`` (Ansible's error line)."""
    start = output.find(marker)
    if start < 0:
        say("demo", f"expected {marker!r} in the output; it was not there")
        raise SystemExit(1)
    message = output[start:].split("\nOrigin: ", 1)[0].split("\n\n", 1)[0]
    say("deploy", " ".join(message.split())[:700])


def quote_converge(output: str) -> None:
    """Print the plan's CONVERGE line (what differed on a host that had the release)."""
    flat = " ".join(output.split())
    start = flat.find("CONVERGE:")
    if start < 0:
        say("demo", "expected a CONVERGE line in the output; it was not there")
        raise SystemExit(1)
    say("deploy", flat[start:].split("' ", 1)[0][:500])


def tamper(artifact: Path, out: Path) -> Path:
    """A copy of ``artifact`` with one file changed after the build (MANIFEST kept)."""
    rewrite_member(artifact, out, "REVISION", lambda body: body + b"patched by hand\n")
    say("release", f"{out.name}: REVISION edited after the build, MANIFEST left as built")
    return out


def swap_current(release: str) -> None:
    """Point ``current`` at ``releases/<release>`` by rename, as a person might by hand."""
    tmp = ROOT / "current.demo-tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(f"releases/{release}")
    os.replace(tmp, ROOT / "current")


def show_status(output: str) -> None:
    """Print the lines of the status playbook's fleet view."""
    block = output.split("TASK [Print the fleet]", 1)[-1].split("PLAY RECAP", 1)[0]
    found = re.search(r"^( +)msg:\n((?:\1.*\n?)+)", block, re.MULTILINE)
    lines = yaml.safe_load(textwrap.dedent(found.group(2))) if found else None
    if not isinstance(lines, list):
        lines = []
    for line in lines:
        say("status", line)
    if not lines:
        say("demo", "the status playbook printed no fleet view")
        raise SystemExit(1)


def show_release_log(last: int) -> None:
    lines = (ROOT / "release-log.jsonl").read_text().splitlines()
    for line in lines[-last:]:
        rec = json.loads(line)
        say("releases", f"{rec['ts']}  {rec['release_id']:<24} {rec['status']}")


# ------------------------------------------------------------------ the agent
def tradeops(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the ``tradeops`` CLI on the demo's root."""
    proc = subprocess.run(
        [str(BIN / "tradeops"), *args, "--root", str(ROOT)],
        env=env(),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if check and proc.returncode != 0:
        say("demo", f"tradeops {args[0]} failed ({proc.returncode}): {proc.stderr.strip()}")
        raise SystemExit(1)
    return proc


def agent_status() -> dict[str, Any]:
    """``tradeops agent status --json``."""
    return dict(json.loads(tradeops("agent", "status", "--json").stdout)["result"])


def agent_extra_config() -> dict[str, Any]:
    """The agent's risk session, drop copy, market data, breakers and halt policy."""
    fix = {"host": "127.0.0.1", "target_comp_id": "SIM", "account": "ACC1"}
    return {
        "risk": {**fix, "port": 9880, "sender_comp_id": "ACC1_RISK", "heartbeat_s": 30,
                 "reconnect_s": 1.0, "default_tick": "0.25"},
        "drop_copy": {**fix, "port": 9879, "sender_comp_id": "ACC1_DC", "heartbeat_s": 1,
                      "reconnect_s": 1.0},
        "market_data": {"symbols": SYMBOLS},
        "breakers": {"config": DEMO_BREAKERS},
        "enforcement": {"processes": [{"program": "refapp", "manager": "supervisord"}],
                        "on_halt": "stop", "kill_after_s": 0.5, "flatten_on_halt": True},
    }  # fmt: skip


def show_agent(status: dict[str, Any]) -> None:
    """The lines of ``tradeops agent status`` an operator looks at."""
    state = status["state"]
    say("agent", f"pid {status['agent']['pid']}, state {state['state']} {state['reasons']}")
    risk = status.get("risk") or {}
    say("agent", f"risk session {risk.get('session')} logged on: {risk.get('logged_on')}")
    for name, (latch, value, threshold) in sorted((status.get("breakers") or {}).items()):
        say("agent", f"  breaker {name:<12} {latch:<10} value {value} threshold {threshold}")


def wait_agent(what: str, check: Any, timeout: float = 30) -> dict[str, Any]:
    """Poll ``tradeops agent status`` until ``check`` (bounded)."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    for _attempt in range(int(timeout * 4) + 1):
        proc = tradeops("agent", "status", "--json", check=False)
        if proc.returncode == 0:
            status = json.loads(proc.stdout)["result"]
            if check(status):
                return status
        if time.monotonic() > deadline:
            break
        time.sleep(0.25)
    say("demo", f"timed out waiting for {what}; last status: {status}")
    raise SystemExit(1)


def operator_reset(operator: str, reason: str, timeout: float = 20, force: bool = False) -> str:
    """``tradeops reset`` (through the agent when it runs); retried while refused (bounded).

    ``force``: when still refused at the end, say why and reset with ``--force``
    (audited as forced), as an operator who checked the venue would.
    """
    deadline = time.monotonic() + timeout
    proc = None
    for _attempt in range(int(timeout) + 1):
        proc = tradeops("reset", "--who", operator, "--reason", reason, check=False)
        if proc.returncode == 0:
            return proc.stdout.strip()
        if time.monotonic() > deadline:
            break
        say("host", f"reset refused, retrying: {proc.stderr.strip()[:200]}")
        time.sleep(1)
    if force:
        say("host", f"still refused: {proc.stderr.strip()[:200] if proc else ''}")
        say("host", "the operator checked GET /state and forces the reset, audited as forced")
        proc = tradeops("reset", "--who", operator, "--reason", reason, "--force", check=False)
        if proc.returncode == 0:
            return proc.stdout.strip()
    say("demo", f"the reset was refused: {proc.stderr.strip() if proc else ''}")
    raise SystemExit(1)


def read_log(path: Path, since: float, event: str | None = None) -> list[dict[str, Any]]:
    """JSON lines of ``path`` written at or after ``since`` (epoch seconds)."""
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        wanted = isinstance(rec, dict) and (event is None or rec.get("event") == event)
        if wanted and epoch(rec) >= since:
            out.append(rec)
    return out


def epoch(rec: dict[str, Any]) -> float:
    """A log line's ``ts`` (UTC, microseconds) as epoch seconds."""
    return datetime.fromisoformat(str(rec["ts"]).replace("Z", "+00:00")).timestamp()


def venue_working() -> int:
    """Working orders of ACC1 at the venue (``GET /state``)."""
    state = get_json(SIM) or {}
    return sum(1 for o in state.get("orders") or [] if o.get("account") == "ACC1")


def knight_timeline(since: float) -> None:
    """The replay's timeline, from the logs of the strategy, the venue and the agent."""
    sent = [r for r in read_log(LOGS / "refapp.jsonl", since, "order_sent")
            if r.get("purpose") == "runaway"]  # fmt: skip
    if not sent:
        say("demo", "the runaway sent no order")
        raise SystemExit(1)
    ids = {r["cl_ord_id"] for r in sent}
    execs = [r for r in read_log(LOGS / "sim.jsonl", since, "exec") if r.get("cl_ord_id") in ids]
    first = epoch(sent[0])
    agent_log = LOGS / "agent.jsonl"
    trips = read_log(agent_log, since, "breaker_trip")
    steps = {r["step"]: r for r in reversed(read_log(agent_log, since, "enforce_step"))}
    if not trips:
        say("demo", "no breaker tripped")
        raise SystemExit(1)
    halted = epoch(trips[0])

    def line(at: float, text: str) -> None:
        say("knight", f"{(at - first) * 1000:+10.3f} ms  {text}")

    order = sent[0]
    line(first, f"first runaway order {order['cl_ord_id']} ({order['symbol']} BUY "
                f"{order['qty']} at {order['price']}), the trading state never read")  # fmt: skip
    if execs:
        line(epoch(execs[0]), "the venue acknowledges it (the agent's drop copy gets a copy)")
    line(halted, f"breaker {trips[0]['breaker']} trips: {trips[0]['reason']}, "
                 f"{trips[0]['text']}; HALTED is published")  # fmt: skip
    names = {
        "freeze": "strategy frozen (SIGSTOP): it cannot send one more order",
        "cancel_all": "mass cancel on the warm risk session, confirmed by the venue",
        "stop": "strategy process stopped (its SIGTERM never runs; SIGKILL)",
        "confirm": "second mass status: zero working orders at the venue",
        "flatten": "positions flattened with reduce-only orders, flat per the venue's reports",
    }
    for name, text in names.items():
        if name in steps:
            rec = steps[name]
            ok = "" if rec["ok"] else " FAILED"
            line(epoch(rec), f"{text}{ok} [{rec['ms']:.1f} ms; {str(rec['detail'])[:90]}]")
    orders = {r["cl_ord_id"] for r in execs}
    after = {r["cl_ord_id"] for r in execs if epoch(r) > halted and r["exec_type"] == "0"}
    say("knight", f"{len(orders)} runaway orders reached the venue, {len(after)} of them after "
                  "HALTED (in flight); Knight's router ran for 45 minutes")  # fmt: skip


def stop() -> int:
    """Stop the demo's supervisord (and with it the simulator, the strategy and the agent).

    The agent's program is also taken out of supervisord's config: the next
    demo installs it again at its step 14, once the simulator it watches runs
    (started first, it would trip on its absent drop copy and stop the strategy).
    """
    (ROOT / "supervisor" / "conf.d" / "agent.conf").unlink(missing_ok=True)
    pidfile = ROOT / "run" / "supervisord.pid"
    if not pidfile.exists():
        print("demo: nothing running")
        return 0
    pid = int(pidfile.read_text().strip())
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists() and str(ROOT).encode() in cmdline.read_bytes():
        os.kill(pid, signal.SIGTERM)
        for _attempt in range(100):
            if not Path(f"/proc/{pid}").exists() or b"Z" in _state(pid):
                break
            time.sleep(0.1)
        print(f"demo: stopped supervisord {pid} and the programs it ran")
    else:
        print("demo: supervisord is not running")
    return 0


def _state(pid: int) -> bytes:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return b"Z"
    return stat.rsplit(b")", 1)[1].split()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stop", action="store_true", help="stop what the demo started")
    args = parser.parse_args()
    if args.stop:
        return stop()

    banner("1. Bootstrap this machine as a trading host (tradeops.algo.bootstrap)")
    playbook("bootstrap")
    say("host", f"layout, venv and supervisord under {ROOT.relative_to(REPO)}")

    banner("2. Start the simulated exchange (tradeops.algo.simulator)")
    playbook("simulator")
    wait_for(SIM, "the simulator", lambda s: "orders_total" in s)
    say("sim", "FIX 4.4 acceptor on 127.0.0.1:9878-9880, admin API on 127.0.0.1:9877")

    banner(
        "3. Install the kill-switch agent, before anything trades (tradeops.algo.killswitch_agent)"
    )
    say("demo", "its own risk session (ACC1_RISK), a drop copy of every execution (ACC1_DC),")
    say("demo", "breakers: exposure > 150 lots a symbol, > 40 new orders a second: halt;")
    say("demo", "on a halt: freeze the strategy, mass cancel, stop it, flatten.")
    say("demo", "The deploy refuses a host whose agent is not live (release_require_agent).")
    agent_vars = {
        "killswitch_agent_user": getpass.getuser(),
        "killswitch_agent_allowed_uids": [os.getuid()],
        "killswitch_agent_extra_config": agent_extra_config(),
    }
    playbook("killswitch_agent", "-e", json.dumps(agent_vars))
    status = wait_agent("the risk session", lambda s: (s.get("risk") or {}).get("logged_on"))
    say("agent", "tradeops agent status:")
    show_agent(status)

    banner("4. Build two releases of the reference strategy")
    first = build("1.0.0")
    second = build("1.1.0")

    banner("5. Deploy 1.0.0: lock, preflight, snapshot, stage, gate, cutover, verify, unlock")
    deploy("1.0.0", first)
    wait_for(REFAPP, "the strategy to log on", lambda s: (s.get("session") or {}).get("logged_on"))

    status = get_json(REFAPP) or {}
    state = (status.get("trading_state") or {}).get("state")
    if state == "HALTED":
        say("refapp", "logged on, but the host is HALTED: a new host starts HALTED (fail closed)")
    else:
        say("refapp", f"logged on; the host is {state} (an earlier demo reset it)")

    banner(
        "6. An operator resets the host to ACTIVE through the agent, with an identity and a reason"
    )
    operator = os.environ.get("USER") or "operator"
    if state != "ACTIVE":
        operator_reset(f"{operator} (demo)", "demo: go live on the simulator")
    say("host", f"{state} -> ACTIVE by {operator} (demo), audited in state/audit.jsonl")

    banner("7. The strategy trades against the simulator")
    show_trading(8)

    banner("8. Deploy 1.1.0 the same way; the running process reports the new release")
    deploy("1.1.0", second)
    status = wait_for(
        REFAPP, "1.1.0 to run", lambda s: str(s.get("release_id", "")).startswith("1.1.0")
    )
    say(
        "refapp", f"running release {status['release_id']} (read from the process, not the symlink)"
    )
    show_trading(6)

    banner("9. The gate refuses a tampered artifact: nothing is activated")
    # This run's own payload gives 1.2.0 a digest (and release id) of its own, so
    # that an earlier demo's verified copy on the host is not reused.
    payload = REPO / ".demo" / "payload-1.2.0"
    payload.mkdir(parents=True, exist_ok=True)
    (payload / "built-at.txt").write_text(f"{time.time()}\n")
    third = build("1.2.0", payload)
    tampered = tamper(third, third.with_name("refapp-1.2.0-tampered.tar.gz"))
    output = deploy("1.2.0", tampered, expect_failure=True)
    quote_failure(output, "localhost failed before the gate")
    status = get_json(REFAPP) or {}
    say("refapp", f"still running release {status.get('release_id')}: no host was touched")

    banner("10. A release that fails after cutover is switched back by itself")
    say(
        "demo",
        "deploying 1.2.0 with a setting its strategy rejects at start "
        "(refapp_fault_mode=no-such-mode, standing in for any bad config)",
    )
    output = deploy(
        "1.2.0",
        third,
        *("-e", "refapp_fault_mode=no-such-mode", "-e", "release_verify_timeout=10"),
        expect_failure=True,
    )
    quote_failure(output, "DEPLOY FAILED after cutover")
    status = wait_for(
        REFAPP, "1.1.0 to run again", lambda s: str(s.get("release_id", "")).startswith("1.1.0")
    )
    say("refapp", f"running release {status['release_id']} again, read from the process")

    banner("11. The release log (order from the log, never from mtime)")
    say("releases", "the newest entries; a release switched back from is logged rolled-back,")
    say("releases", "so that no later rollback can return to it")
    show_release_log(8)

    banner("12. Drift is refused: a hand-made copy swapped in under current")
    active = Path(os.readlink(ROOT / "current")).name
    copy = ROOT / "releases" / f"{active}-hotfix"
    subprocess.run(["cp", "-a", str(ROOT / "releases" / active), str(copy)], check=True)
    swap_current(copy.name)
    say("demo", f"someone copied {active} to {copy.name} and pointed current at it by hand")
    try:
        output = playbook(
            "deploy",
            *("-e", "release_version=1.1.0", "-e", f"release_artifact={second}"),
            expect_failure=True,
        )
        quote_failure(output, "DRIFT:")
    finally:
        swap_current(active)
        shutil.rmtree(copy)
    say("demo", f"current is back on {active}, the copy removed; the release log adopted nothing")

    banner("13. Code and config move together: a flag changed under the same release")
    before = get_json(REFAPP) or {}
    say("demo", "deploy 1.1.0 again, with refapp_spread_bps=7 (a flag), then with it put back")
    for extra in ('{"refapp_spread_bps": 7}', "{}"):
        output = deploy("1.1.0", second, "-e", extra)
        quote_converge(output)
        now = get_json(REFAPP) or {}
        say(
            "refapp",
            f"runs {now.get('release_id')} with config {str(now.get('config_sha256'))[:12]} "
            f"(pid {now.get('pid')})",
        )
    after = get_json(REFAPP) or {}
    same = before.get("config_sha256") == after.get("config_sha256")
    say("demo", f"the config is the one it started with: {same}")

    banner("14. The fleet as it really is (tradeops.algo.status)")
    show_status(playbook("status", "-e", f"tradeops_status_url={REFAPP}"))

    banner("15. The agent has watched every step: its view now")
    status = wait_agent("ACTIVE", lambda s: s["state"]["state"] == "ACTIVE")
    show_agent(status)
    show_trading(2)

    banner("16. Knight, 1 Aug 2012: a flag wakes dead code that ignores the trading state")
    say("demo", "deploy 1.1.0 with refapp_fault_mode=runaway and ignore_trading_state=true:")
    say("demo", "marketable buys at 100 a second, no limit, no state check: only the agent")
    say("demo", "(its breakers on its own drop copy, SIGSTOP, the mass cancel) can stop it")
    since = time.time()
    fault = json.dumps({"refapp_fault_mode": "runaway", "refapp_fault": RUNAWAY})
    deploy("1.1.0", second, "-e", fault, expect_failure=None)
    status = wait_agent(
        "the halt sequence",
        lambda s: (
            s["state"]["state"] == "HALTED" and (s.get("enforcement") or {}).get("running") is False
        ),
    )
    knight_timeline(since)

    banner("17. The book at the venue (GET /state), not the agent's own bookkeeping")
    state = get_json(SIM) or {}
    positions = {p["symbol"]: p["qty"] for p in state.get("positions") or []
                 if p.get("account") == "ACC1"}  # fmt: skip
    say("sim", f"working orders of ACC1: {venue_working()}; positions {positions}")
    say("agent", f"state {status['state']['state']} {status['state']['reasons']} by "
                 f"{status['state']['who']}; the venue reported "
                 f"{status.get('venue_working_orders')} working")  # fmt: skip
    say("agent", f"halt sequence ok: {status['enforcement']['ok']}, "
                 f"{status['enforcement']['total_ms']} ms in all")  # fmt: skip

    banner("18. An operator resets the host through the agent (tradeops reset --who --reason)")
    answer = operator_reset(
        f"{operator} (demo)", "demo: runaway understood, release fixed", timeout=5, force=True
    )
    for text in answer.splitlines():
        say("host", text.strip())
    status = agent_status()
    show_agent(status)
    say("demo", "the reset re-armed every breaker whose condition cleared (one still holding")
    say("demo", "stays suppressed until it clears once); it did not restart the strategy nor")
    say("demo", "reopen positions: the runaway release stays stopped until a good one is deployed")

    banner("19. Deploy the good configuration of 1.1.0 again: the strategy trades again")
    deploy("1.1.0", second)
    wait_for(REFAPP, "the strategy to log on", lambda s: (s.get("session") or {}).get("logged_on"))
    show_trading(4)

    banner("Done")
    print(
        "Still running: the simulator, the strategy and the agent, under .demo/. Look around:\n"
        f"  curl -s {REFAPP} | python3 -m json.tool\n"
        f"  curl -s {SIM} | python3 -m json.tool\n"
        "  tail -f .demo/srv/tradeops/shared/log/refapp.jsonl\n"
        f"  {BIN / 'tradeops'} agent status --root {ROOT}\n"
        "Stop them with: make demo-stop\n"
        "Every deploy phase of every run is in .demo/audit/deploy-audit.jsonl.\n"
        "Coming with later issues: blue/green warm standby, canary, execution rollback.\n"
        "They will appear here as they land."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
