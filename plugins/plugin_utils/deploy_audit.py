# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy's audit record, written by the deploy itself (no callback to enable).

``phase_records`` judges each phase of each host from the results the phase
registered (the phase list and its results are data: roles/release/vars/main.yml);
``AuditLog`` appends the records as JSON lines, fsync'd, each (run, host, phase)
once however many checkpoints see it, and writes the gate report.
"""

from __future__ import annotations

import fcntl
import json
import os
from datetime import datetime, timezone

RANK = {"ok": 0, "changed": 1, "failed": 2, "unreachable": 3}


class AuditError(ValueError):
    """The audit request is malformed (an unknown phase, a bad phase list)."""


def _utc_now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _judge(results):
    """Outcome, duration and error of a phase from its registered results; None if not run."""
    ran = [r for r in results if isinstance(r, dict) and r and not r.get("skipped")]
    if not ran:
        return None
    outcome, error, duration = "ok", None, 0.0
    for result in ran:
        if result.get("unreachable"):
            now = "unreachable"
        elif result.get("failed"):
            now = "failed"
        elif result.get("changed"):
            now = "changed"
        else:
            now = "ok"
        if RANK[now] > RANK[outcome]:
            outcome = now
            if now in ("failed", "unreachable"):
                error = str(result.get("msg") or now)[:500]
        elapsed = result.get("elapsed_s")
        if isinstance(elapsed, (int, float)) and not isinstance(elapsed, bool):
            duration += elapsed
    return outcome, round(duration, 3), error


def check_phases(phases, names):
    """Return the phase list's names; refuse a name in ``names`` that is not a phase."""
    if not isinstance(phases, list) or not all(
        isinstance(p, dict) and isinstance(p.get("name"), str) for p in phases
    ):
        raise AuditError("phases must be a list of {name, results} (roles/release/vars/main.yml)")
    known = [p["name"] for p in phases]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise AuditError(
            "unknown deploy phase(s) %s; the phases are %s" % (", ".join(unknown), ", ".join(known))
        )
    return known


def phase_records(phases, record, results, context):
    """The records of the phases named in ``record`` that have run, for every host in ``results``.

    ``results``: host -> {registered variable name -> result}. ``context``: the fields
    every line carries (run_id, release_id, operator, play).
    """
    check_phases(phases, record)
    wanted = [p for p in phases if p["name"] in record]
    lines = []
    for host in sorted(results):
        registered = results[host] or {}
        for phase in wanted:
            judged = _judge([registered.get(name) for name in phase.get("results") or ()])
            if judged is None:
                continue
            outcome, duration, error = judged
            line = {
                "component": "deploy",
                "event": "phase",
                "host": host,
                "phase": phase["name"],
                "outcome": outcome,
                "duration_s": duration,
            }
            line.update(context)
            if error:
                line["error"] = error
            lines.append(line)
    return lines


def note_records(notes, context):
    """Audit lines for events the plan found (a refusal, a repair): one per host and event."""
    lines = []
    for note in notes or []:
        if not isinstance(note, dict) or not note.get("host") or not note.get("event"):
            raise AuditError("each note needs a host and an event: %r" % (note,))
        line = {
            "component": "deploy",
            "event": str(note["event"]),
            "host": str(note["host"]),
            "detail": str(note.get("detail", ""))[:1000],
        }
        line.update(context)
        lines.append(line)
    return lines


def _key(line):
    return "%s/%s" % (line["host"], line.get("phase") or line["event"])


def _write_atomic(path, text, mode=0o644):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class AuditLog:
    """``<audit_dir>/deploy-audit.jsonl``, with what each run has already recorded."""

    def __init__(self, audit_dir):
        self.directory = os.path.expanduser(str(audit_dir))
        self.path = os.path.join(self.directory, "deploy-audit.jsonl")
        self.runs = os.path.join(self.directory, "runs")

    def append(self, run_id, lines):
        """Append the lines not yet recorded for ``run_id``; return those written."""
        os.makedirs(self.runs, exist_ok=True)
        seen_path = os.path.join(self.runs, "%s.audited.json" % run_id)
        lock_fd = os.open(self.path + ".lock", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)  # forks of one run write at once
            try:
                with open(seen_path, encoding="utf-8") as handle:
                    seen = set(json.load(handle))
            except (OSError, ValueError):
                seen = set()
            new = [ln for ln in lines if _key(ln) not in seen]
            if new:
                data = "".join(
                    json.dumps(dict(ln, ts=_utc_now()), sort_keys=True) + "\n" for ln in new
                )
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                try:
                    os.write(fd, data.encode("utf-8"))
                    os.fsync(fd)
                finally:
                    os.close(fd)
                seen.update(_key(ln) for ln in new)
                _write_atomic(seen_path, json.dumps(sorted(seen)))
            return new
        finally:
            os.close(lock_fd)

    def write_gate_report(self, document):
        """Write ``gate-<run_id>.json``; return its path."""
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, "gate-%s.json" % document.get("run_id", "unknown"))
        _write_atomic(path, json.dumps(document, indent=2, sort_keys=True) + "\n")
        return path
