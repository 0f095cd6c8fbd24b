# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy consistency gate as a filter: which hosts differ, and how."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: gate_offenders
short_description: Name the hosts that fail the deploy consistency gate
version_added: "0.1.0"
description:
  - Compares what every targeted host staged with what the controller decided.
  - Returns a dict of host name to the reason it fails; empty when the gate passes.
  - A host fails when it failed or was unreachable before the gate, reported nothing,
    answered with a tradeops library other than the one the collection needs,
    no longer holds the staged release, staged another release id or manifest digest,
    or holds a config whose sha256 differs from the one rendered for it on the controller.
author:
  - tradeops.algo maintainers (@tradeops)
options:
  _input:
    description: The reports, host name to the C(release_gate_report) fact (or null).
    type: dict
    required: true
  release_id:
    description: The release id the controller decided.
    type: str
    required: true
  manifest_digest:
    description: The manifest digest of the artifact on the controller.
    type: str
    required: true
  live_hosts:
    description: Hosts still in the play (C(ansible_play_hosts)).
    type: list
    elements: str
    required: true
  failures:
    description: Host name to why it failed before the gate (a dict with C(failed)), or null.
    type: dict
  planned:
    description:
      - Check mode, where nothing was staged.
      - Accept what the stage would create or write.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Compute the offenders
  ansible.builtin.set_fact:
    offenders: >-
      {{ reports | tradeops.algo.gate_offenders(release_id, manifest_digest, ansible_play_hosts) }}
"""

RETURN = r"""
_value:
  description: Host name to the reason it fails the gate.
  type: dict
"""

from ansible_collections.tradeops.algo.plugins.module_utils.host_api import (
    NEEDED,
    library_mismatch,
)

SUMMARY_KEYS = (
    "host_library",
    "release_id",
    "manifest_digest",
    "action",
    "config_sha256",
    "config_expected_sha256",
    "config_changed",
)
# In check mode nothing was staged: what the stage would do is what the gate checks.
PLANNED_ACTIONS = ("none", "create", "log-only")


def gate_summary(result):
    """Keep what the gate compares from a host's live re-check result (None stays None)."""
    if not isinstance(result, dict) or result.get("skipped"):
        return None
    if result.get("failed"):
        return {"failed": str(result.get("msg") or "failed")}
    return {key: result[key] for key in SUMMARY_KEYS if key in result}


def gate_failure(host_vars):
    """Why a host failed before the gate, from its registered results, or None.

    Looks at the lock and stage results (registered before the host stops) and
    at the report its rescue left, so that a host that failed is named with the
    reason even when its rescue has not run yet.
    """
    if not host_vars:
        return None
    report = host_vars.get("release_gate_report") or {}
    if isinstance(report, dict) and report.get("failed"):
        return {"failed": str(report["failed"])}
    # Both tasks run with failed_when false: a failure shows as a missing result key.
    lock = host_vars.get("release_lock_result") or {}
    if isinstance(lock, dict) and lock and not lock.get("skipped") and not lock.get("acquired"):
        return {"failed": "lock: %s" % (lock.get("msg") or "not acquired")}
    stage = host_vars.get("release_stage_result") or {}
    ran = isinstance(stage, dict) and stage and not stage.get("skipped")
    if ran and (stage.get("failed") or "manifest_digest" not in stage):
        return {"failed": "stage: %s" % (stage.get("msg") or "failed")}
    return None


def _problem(report, release_id, manifest_digest, planned):
    if not isinstance(report.get("host_library"), dict):
        return "answered without its library version (it predates host API 2); %s" % NEEDED
    mismatch = library_mismatch(report)
    if mismatch:
        return mismatch
    allowed = PLANNED_ACTIONS if planned else ("none",)
    if report.get("action", "none") not in allowed:
        return "no longer holds a staged %s (the check would %s it)" % (
            release_id,
            report["action"],
        )
    if report.get("release_id") != release_id:
        return "staged release %s, expected %s" % (report.get("release_id"), release_id)
    if report.get("manifest_digest") != manifest_digest:
        return "manifest digest %s, expected %s" % (
            str(report.get("manifest_digest"))[:12],
            manifest_digest[:12],
        )
    seen = dict(report.get("config_sha256") or {})
    expected = report.get("config_expected_sha256") or {}
    if planned:  # the files the stage would write get the expected content
        seen.update({path: expected.get(path) for path in report.get("config_changed") or ()})
    for path in sorted(set(seen) | set(expected)):
        if seen.get(path) != expected.get(path):
            return "config %s digest %s, expected %s" % (
                path,
                str(seen.get(path))[:12],
                str(expected.get(path))[:12],
            )
    return None


def gate_offenders(reports, release_id, manifest_digest, live_hosts, failures=None, planned=False):
    """Return {host: reason} for every host that fails the gate.

    ``reports`` maps each targeted host to its live re-check summary (or None);
    ``failures`` maps hosts to why they failed before the gate (``{"failed": why}``);
    ``planned`` (check mode) accepts what the stage would create.
    """
    offenders = {}
    live = set(live_hosts)
    failures = failures or {}
    for host in sorted(set(reports) | set(failures)):
        failure = failures.get(host)
        report = reports.get(host)
        if isinstance(failure, dict) and failure.get("failed"):
            offenders[host] = "failed before the gate: %s" % failure["failed"]
        elif isinstance(report, dict) and report.get("failed"):
            offenders[host] = "failed before the gate: %s" % report["failed"]
        elif host not in live:
            offenders[host] = "failed or unreachable before the gate"
        elif not isinstance(report, dict) or not report:
            offenders[host] = "reported nothing"
        else:
            problem = _problem(report, release_id, manifest_digest, planned)
            if problem:
                offenders[host] = problem
    return offenders


def gate_stop_message(host, offenders, own_failure):
    """What ``host`` says when the run stops before cutover: plainly, what happened to it.

    ``offenders`` is the gate's report (None when the gate has not compared the
    hosts yet); ``own_failure`` is the task and message this host failed with.
    """
    if offenders is None:
        return "%s failed before the gate, so no host is activated in this run: %s" % (
            host,
            own_failure,
        )
    if host in offenders:
        return "%s failed the gate, so no host is activated in this run: %s" % (
            host,
            offenders[host],
        )
    if offenders:
        return "%s not activated: %s failed the gate (nothing is wrong with this host)" % (
            host,
            ", ".join(sorted(offenders)),
        )
    return "%s failed after the gate passed, so no host is activated in this run: %s" % (
        host,
        own_failure,
    )


class FilterModule:
    """Ansible filter plugin."""

    def filters(self):
        return {
            "gate_failure": gate_failure,
            "gate_offenders": gate_offenders,
            "gate_stop_message": gate_stop_message,
            "gate_summary": gate_summary,
        }
