"""make bench: the kill-switch agent's figures, in ``bench/results/killswitch.json``.

Each figure is ``{p50, p99, max, n}`` (see the issue of the agent for the
targets), measured on this machine in this run:

* ``trip_to_halted_us``: a halt over the Unix socket until a separate strategy
  process reads HALTED (``killswitch_trip.trips``), n = ``TRIPS``;
* ``baseline_ansible_halt_ms``: the same halt through ``ansible-playbook
  tradeops.algo.kill`` on a local inventory, n = ``ANSIBLE_TRIALS``
  (``ansible_halt``), and ``agent_vs_ansible_p50``, the ratio of the p50s;
* ``trip_to_halted_under_load_us``: the same with a CPU hog on every core;
* ``trip_to_halted_default_scheduling_us`` and ``..._under_load_...``: both
  again with everything at the normal policy on any CPU (the agent without
  its ``scheduling`` section), n = ``COMPARE_TRIPS``, to show what the
  real-time policy buys;
* ``trip_to_halted_without_cpu_latency_us`` and ``..._under_load_...``: placed,
  but the agent holds no PM QoS request (``cpu_latency_us``), n =
  ``COMPARE_TRIPS``: what keeping idle cores out of halt buys;
* ``trip_to_halted_under_load_strategy_normal_policy_us``: under load with the
  observer at the normal policy on its core (shared with a hog), n =
  ``COMPARE_TRIPS``: what a strategy that a hog can preempt sees;
* ``agent_idle``: the idle agent's CPU share and RSS;
* ``cancel_all_1000_ms``: the risk session's mass cancel until the venue
  confirms zero of 1,000 resting orders over 50 symbols (``bench_risk_session``);
* ``flatten_50_ms``: the risk session's flatten until the venue's positions
  show 50 positions flat (``bench_flatten``);
* ``fleet_kill_8_hosts_ms`` and ``fleet_kill_8_hosts_ssh_ms``: ``tradeops kill``
  on the 8-host loopback fleet, over TCP and over a warm SSH pool
  (``bench_fleet_kill``);
* ``knight_replay`` and ``breaker_detect_ms``: the reference strategy's runaway
  with the trading-state check bypassed, stopped by the agent's breakers, and
  the breaker's detection time (``knight_replay``).

Writes ``bench/results/killswitch.json``; every process it starts is stopped
by its PID.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ansible_halt
import bench_flatten
import bench_fleet_kill
import bench_risk_session
import killswitch_trip
import knight_replay
from common import write_result

TRIPS = 10_000
COMPARE_TRIPS = 2_000
ANSIBLE_TRIALS = 10


def main() -> int:
    figures: dict = {}
    figures["trip_to_halted_us"] = killswitch_trip.trips(TRIPS)
    print("trip_to_halted_us", figures["trip_to_halted_us"], flush=True)
    figures["baseline_ansible_halt_ms"] = ansible_halt.baseline(ANSIBLE_TRIALS)
    agent_p50_ms = figures["trip_to_halted_us"]["p50"] / 1000
    ratio = figures["baseline_ansible_halt_ms"]["p50"] / agent_p50_ms
    figures["agent_vs_ansible_p50"] = round(ratio, 1)
    print("baseline_ansible_halt_ms", figures["baseline_ansible_halt_ms"], flush=True)
    print("agent_vs_ansible_p50", figures["agent_vs_ansible_p50"], flush=True)
    figures["trip_to_halted_under_load_us"] = killswitch_trip.trips(TRIPS, load=True)
    print("trip_to_halted_under_load_us", figures["trip_to_halted_under_load_us"], flush=True)
    for name, load in (("", False), ("_under_load", True)):
        key = f"trip_to_halted{name}_default_scheduling_us"
        figures[key] = killswitch_trip.trips(COMPARE_TRIPS, load=load, placed=False)
        print(key, figures[key], flush=True)
    for name, load in (("", False), ("_under_load", True)):
        key = f"trip_to_halted{name}_without_cpu_latency_us"
        figures[key] = killswitch_trip.trips(COMPARE_TRIPS, load=load, pm_qos=False)
        print(key, figures[key], flush=True)
    key = "trip_to_halted_under_load_strategy_normal_policy_us"
    figures[key] = killswitch_trip.trips(COMPARE_TRIPS, load=True, strategy_fifo=False)
    print(key, figures[key], flush=True)
    figures["agent_idle"] = killswitch_trip.agent_idle()
    print("agent_idle", figures["agent_idle"], flush=True)
    risk = bench_risk_session.run()
    figures["cancel_all_1000_ms"] = risk["cancel_all_1000_ms"]
    figures["cancel_all_1000_strategy_connected_ms"] = risk["cancel_all_1000_strategy_connected_ms"]
    print("cancel_all_1000_ms", figures["cancel_all_1000_ms"], flush=True)
    flat = bench_flatten.run()
    figures["flatten_50_ms"] = flat["flatten_50_ms"]
    print("flatten_50_ms", figures["flatten_50_ms"], flush=True)
    fleet = bench_fleet_kill.run()
    for name in ("fleet_kill_8_hosts_ms", "fleet_kill_8_hosts_ssh_ms"):
        figures[name] = fleet[name]
    figures["fleet_kill_detail"] = {
        k: v for k, v in fleet.items() if not k.startswith("fleet_kill_8")
    }
    print("fleet_kill_8_hosts_ms", figures["fleet_kill_8_hosts_ms"], flush=True)
    knight = knight_replay.run()
    figures["knight_replay"] = knight["knight_replay"]
    figures["breaker_detect_ms"] = knight["breaker_detect_ms"]
    figures["setup"] = {
        "trip": "tradeops agent run subprocess; halt over a fresh Unix-socket connection; a"
        " separate process spinning on TradingStateReader.current(); CLOCK_MONOTONIC both sides;"
        " placement: the agent SCHED_FIFO 10 on CPU 0 with cpu_latency_us 0 (its config's"
        " scheduling section; without_cpu_latency: no PM QoS request), the"
        " halting client SCHED_FIFO 5 on CPU 0, the observer (armed per trial) SCHED_FIFO 1 on"
        " CPU 1, the hogs at the normal policy placed by the kernel (default_scheduling: all"
        " normal, any CPU; strategy_normal_policy: the observer at the normal policy on CPU 1)",
        "flatten": flat["setup"],
        "cancel_all": risk["setup"],
        "ansible_halt": "ansible-playbook tradeops.algo.kill (module tradeops.algo.killswitch"
        " over the agent's socket), local inventory, ansible_connection=local; from the"
        " launch until the same observer reads HALTED",
        **knight["setup"],
    }
    path = write_result("killswitch", figures)
    print(json.dumps(figures, indent=2, default=str))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
