# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet as it really is, from every host's tradeops.algo.host_info answer."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: fleet_view
short_description: The fleet's true state, from what each host answered
version_added: "0.2.0"
description:
  - Reads every host's C(tradeops.algo.host_info) answer (its C(release_state), library and
    running process) and returns the fleet view that the deploy's plan and the
    C(tradeops.algo.status) playbook use.
  - C(hosts) maps each host to its release, drift, alteration, config files that differ,
    lock, library, and the release and config digest its process runs; C(releases) maps each
    release id to the hosts that run it (C(split) when more than one); C(drift), C(altered)
    and C(locks) map hosts to one line for an operator; C(unread) lists hosts that gave no
    answer.
  - A lock is C(dead) when its run provably ended. Either it was taken by this controller
    (the lock records its host name) and that process is gone, or it is older than its expiry.
author:
  - tradeops.algo maintainers (@tradeops)
options:
  _input:
    description: Host name to its C(tradeops.algo.host_info) result (or null).
    type: dict
    required: true
  controller_host:
    description: This controller's host name, to judge whether a lock's run is alive.
    type: str
  run_id:
    description: The run asking; its own locks are not reported.
    type: str
"""

EXAMPLES = r"""
- name: Print the fleet
  ansible.builtin.debug:
    msg: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'info')))
             | tradeops.algo.fleet_view }}"
"""

RETURN = r"""
_value:
  description: The fleet view (hosts, releases, split, drift, locks, unread).
  type: dict
"""

import hashlib
import os
import time


def _alive(pid):
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_line(lock, controller_host=None, now=None):
    """One line for an operator about a held lock, and whether its run is provably dead."""
    now = time.time() if now is None else now
    since = lock.get("since") or 0
    try:
        age = int(now - float(since))
    except (TypeError, ValueError):
        age = -1
    line = "deploy lock held by %s (run %s, release %s, controller %s pid %s) for %ss" % (
        lock.get("owner", "?"),
        lock.get("run_id", "?"),
        lock.get("release_id", "?"),
        lock.get("host", "?"),
        lock.get("pid", "?"),
        age,
    )
    dead = None
    if controller_host and lock.get("host") == controller_host and not _alive(lock.get("pid")):
        dead = "its controller process is gone"
    elif lock.get("stale") and str(lock.get("stale_reason", "")).startswith("older than"):
        dead = "it is past its expiry (%s)" % lock.get("stale_reason")
    elif lock.get("stale"):
        dead = None  # unreadable, or judged on the host: not proof that the run ended
    if dead:
        return line + "; DEAD: " + dead, True
    return line + "; its run may still be alive", False


def fleet_view(answers, controller_host=None, run_id=None):
    """Return the fleet view; see DOCUMENTATION."""
    view = {
        "hosts": {},
        "releases": {},
        "drift": {},
        "altered": {},
        "locks": {},
        "dead_locks": [],
        "unread": [],
    }
    for host in sorted(answers or {}):
        answer = answers[host]
        state = answer.get("release_state") if isinstance(answer, dict) else None
        if not isinstance(state, dict):
            view["unread"].append(host)
            continue
        library = answer.get("host_library") or {}
        running = answer.get("running") or {}
        entry = {
            "current": state.get("current"),
            "drift": state.get("drift"),
            "pending": state.get("pending"),
            "rollback_target": state.get("rollback_target"),
            "altered": state.get("altered"),
            "config_differs": answer.get("config_differs") or [],
            "library": library.get("version") or answer.get("library_version"),
            "running": running.get("release_id"),
            "running_config": running.get("config_sha256"),
            "lock": None,
        }
        lock = state.get("lock")
        if isinstance(lock, dict) and lock.get("run_id") != run_id:
            line, dead = lock_line(lock, controller_host)
            entry["lock"] = line
            view["locks"][host] = line
            if dead:
                view["dead_locks"].append(host)
        if state.get("drift"):
            view["drift"][host] = state["drift"]
        if state.get("altered"):
            view["altered"][host] = state["altered"]
        view["releases"].setdefault(str(state.get("current")), []).append(host)
        view["hosts"][host] = entry
    view["split"] = len(view["releases"]) > 1
    return view


def fleet_lines(view):
    """The fleet view as lines for people: one per host, then the fleet."""
    lines = []
    for host, h in sorted(view.get("hosts", {}).items()):
        line = "%s: current %s, running %s, library %s" % (
            host,
            h.get("current") or "none",
            h.get("running") or "unknown",
            h.get("library") or "unknown",
        )
        if h.get("running_config"):
            line += ", config %s" % h["running_config"][:12]
        for label, key in (
            ("DRIFT", "drift"),
            ("ALTERED", "altered"),
            ("interrupted activation", "pending"),
            ("LOCK", "lock"),
        ):
            if h.get(key):
                line += ", %s: %s" % (label, h[key])
        lines.append(line)
    runs = "; ".join(
        "%s on %s" % (rid, ", ".join(hosts))
        for rid, hosts in sorted(view.get("releases", {}).items())
    )
    fleet = "fleet: %s%s" % ("SPLIT: " if view.get("split") else "one release: ", runs)
    if view.get("unread"):
        fleet += "; unreadable: " + ", ".join(view["unread"])
    lines.append(fleet)
    return lines


def fleet_differences(view, release_id, config_sha256=None, manage_process=True):
    """Host -> what differs from running ``release_id`` with its config ('' hosts left out).

    "Already runs" means the same release on disk and in the process, and the same
    config on disk and in the process (when ``config_sha256``, the digest of the
    config the process loads, is given: one for every host, or host -> digest,
    since each host's config is rendered for it).
    """
    found = {}
    for host, h in sorted(view.get("hosts", {}).items()):
        wanted = config_sha256.get(host) if isinstance(config_sha256, dict) else config_sha256
        why = []
        if h.get("current") != release_id:
            why.append("current is %s" % (h.get("current") or "none"))
        if h.get("config_differs"):
            why.append("config on disk differs: %s" % ", ".join(h["config_differs"]))
        if manage_process:
            if h.get("running") != release_id:
                why.append("its process runs %s" % (h.get("running") or "no known release"))
            elif wanted and not h.get("running_config"):
                why.append("its process does not report its config")
            elif wanted and h.get("running_config") != wanted:
                why.append(
                    "its process runs config %s, the controller rendered %s"
                    % (h["running_config"][:12], wanted[:12])
                )
        if why:
            found[host] = "; ".join(why)
    for host in view.get("unread", []):
        found[host] = "not read"
    return found


def plan_notes(view, drift_repair_reason="", lock_takeover_reason=""):
    """The audit notes of what the plan found: refusals and repairs, one per host and event."""
    notes = []
    for host, why in sorted(view.get("altered", {}).items()):
        notes.append({"host": host, "event": "refused-altered", "detail": why})
    for host, why in sorted(view.get("drift", {}).items()):
        if drift_repair_reason:
            detail = "repaired (%s): %s" % (drift_repair_reason, why)
            notes.append({"host": host, "event": "drift-repaired", "detail": detail})
        else:
            notes.append({"host": host, "event": "refused-drift", "detail": why})
    if view.get("altered") or (view.get("drift") and not drift_repair_reason):
        return notes  # refused before the locks are looked at
    dead = set(view.get("dead_locks", [])) if lock_takeover_reason else set()
    for host, line in sorted(view.get("locks", {}).items()):
        if host in dead:
            detail = "taken over (%s): %s" % (lock_takeover_reason, line)
            notes.append({"host": host, "event": "lock-taken-over", "detail": detail})
        else:
            notes.append({"host": host, "event": "refused-locked", "detail": line})
    return notes


def config_digests(files):
    """The release's config files by digest only: [{path, sha256}] (no content leaves)."""
    out = []
    for item in files or []:
        content = item.get("content")
        if content is None:
            continue
        text = content if isinstance(content, str) else str(content)
        out.append(
            {
                "path": item.get("path"),
                "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            }
        )
    return out


class FilterModule:
    """Ansible filter plugin."""

    def filters(self):
        return {
            "config_digests": config_digests,
            "fleet_differences": fleet_differences,
            "fleet_lines": fleet_lines,
            "fleet_view": fleet_view,
            "plan_notes": plan_notes,
        }
