# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write one JSON line per deploy phase per host to an audit log on the controller."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: audit
type: notification
short_description: Audit log of deploy phases, one JSON line per phase and host
version_added: "0.1.0"
description:
  - Records every phase of the tradeops deploy (controller, plan, lock, preflight,
    snapshot, stage, gate, cutover, verify, finish, unlock) on every host as one JSON
    line with the time, the operator, the release id, the run id, the outcome and the duration.
  - A phase is the prefix before C( | ) in the name of a task of the
    C(tradeops.algo.release) role. Lines are appended and fsync'd.
  - Also writes the deploy gate's report, every host's live re-check and the offenders,
    as C(gate-<run_id>.json) in the role's C(release_audit_dir) (by default the same directory).
author:
  - tradeops.algo maintainers (@tradeops)
requirements:
  - Enable it with C(callbacks_enabled = tradeops.algo.audit) in C(ansible.cfg).
options:
  audit_dir:
    description: Directory of the audit log C(deploy-audit.jsonl) on the controller.
    type: path
    default: ~/.tradeops/audit
    env:
      - name: TRADEOPS_AUDIT_DIR
    ini:
      - section: callback_tradeops_audit
        key: audit_dir
  operator:
    description: Operator recorded in every line.
    type: str
    env:
      - name: TRADEOPS_OPERATOR
      - name: USER
"""

import json
import os
import time
from datetime import datetime, timezone

from ansible.plugins.callback import CallbackBase

PHASES = (
    "controller",
    "plan",
    "lock",
    "preflight",
    "snapshot",
    "stage",
    "gate",
    "cutover",
    "verify",
    "finish",
    "unlock",
)
RANK = {"ok": 0, "skipped": 0, "changed": 1, "failed": 2, "unreachable": 3}


def phase_of(task_name):
    """Return the deploy phase named by a task, or None.

    Task names of roles come as ``tradeops.algo.release : Stage | Copy ...``.
    """
    name = task_name or ""
    if " : " in name:
        name = name.split(" : ", 1)[1]
    head = name.split(" | ", 1)[0].strip().lower()
    return head if head in PHASES and " | " in name else None


class CallbackModule(CallbackBase):
    """Aggregate task results into phases and append them to the audit log."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "tradeops.algo.audit"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._open = {}  # host -> phase record being built
        self._release = {}  # release_id, run_id seen in results
        self._path = None
        self._playbook = ""
        self._task_started = time.time()

    def set_options(self, task_keys=None, var_options=None, direct=None):
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        audit_dir = os.path.expanduser(self.get_option("audit_dir"))
        os.makedirs(audit_dir, exist_ok=True)
        self._path = os.path.join(audit_dir, "deploy-audit.jsonl")

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task_started = time.time()

    def v2_playbook_on_handler_task_start(self, task):
        self._task_started = time.time()

    def v2_playbook_on_start(self, playbook):
        self._playbook = os.path.basename(playbook._file_name)

    def _learn(self, result):
        facts = result._result.get("ansible_facts") or {}
        for key, field in (("release_id", "release_id"), ("release_run_id", "run_id")):
            if facts.get(key):
                self._release[field] = facts[key]
        if result._result.get("release_id") and "release_id" not in self._release:
            self._release["release_id"] = result._result["release_id"]
        if isinstance(facts.get("release_gate_document"), dict):
            self._write_gate_report(facts["release_gate_document"])

    def _write_gate_report(self, document):
        """Write the deploy gate's report as ``gate-<run_id>.json`` next to the audit log."""
        directory = document.get("audit_dir") or (self._path and os.path.dirname(self._path))
        if not directory:
            return
        directory = os.path.expanduser(str(directory))
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "gate-%s.json" % document.get("run_id", "unknown"))
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def _record(self, result, outcome):
        self._learn(result)
        phase = phase_of(result._task.get_name())
        host = result._host.get_name()
        if phase is None:
            return
        now = time.time()
        current = self._open.get(host)
        if current is not None and current["phase"] != phase:
            self._flush(host)
            current = None
        if current is None:
            current = {"phase": phase, "start": self._task_started, "outcome": "ok", "tasks": 0}
            self._open[host] = current
        current["tasks"] += 1
        current["end"] = now
        if RANK[outcome] > RANK.get(current["outcome"], 0):
            current["outcome"] = outcome
            if outcome in ("failed", "unreachable"):
                current["error"] = str(result._result.get("msg", ""))[:500]

    def _flush(self, host):
        record = self._open.pop(host, None)
        if record is None or self._path is None:
            return
        line = {
            "ts": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "component": "deploy",
            "event": "phase",
            "host": host,
            "phase": record["phase"],
            "outcome": record["outcome"],
            "duration_s": round(record["end"] - record["start"], 3),
            "tasks": record["tasks"],
            "operator": self.get_option("operator") or "unknown",
            "release_id": self._release.get("release_id"),
            "run_id": self._release.get("run_id"),
            "playbook": self._playbook,
        }
        if "error" in record:
            line["error"] = record["error"]
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, (json.dumps(line, sort_keys=True) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def v2_runner_on_ok(self, result):
        self._record(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "ok" if ignore_errors else "failed")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_runner_on_skipped(self, result):
        self._learn(result)

    def v2_playbook_on_stats(self, stats):
        for host in list(self._open):
            self._flush(host)
