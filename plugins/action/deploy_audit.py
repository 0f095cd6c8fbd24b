# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of tradeops.algo.deploy_audit: the deploy writes its own audit record."""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible_collections.tradeops.algo.plugins.plugin_utils.deploy_audit import (
    AuditError,
    AuditLog,
    note_records,
    phase_records,
)

ARGS = {
    "audit_dir": {"type": "path", "required": True},
    "run_id": {"type": "str", "required": True},
    "release_id": {"type": "str", "default": ""},
    "operator": {"type": "str", "default": "unknown"},
    "phases": {"type": "list", "elements": "dict", "required": True},
    "record": {"type": "list", "elements": "str", "default": []},
    "notes": {"type": "list", "elements": "dict", "default": []},
    "hosts": {"type": "list", "elements": "str"},
    "gate_report": {"type": "dict"},
}


class ActionModule(ActionBase):
    """Judge the named phases of every host from their registered results; append them."""

    _supports_check_mode = True  # the audit is the controller's record of the run, in any mode
    _supports_async = False
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # unused since ansible-core 2.10
        task_vars = task_vars or {}
        _validation, args = self.validate_argument_spec(argument_spec=ARGS)
        hostvars = task_vars.get("hostvars", {})
        hosts = (
            args["hosts"]
            if args["hosts"] is not None
            else task_vars.get("ansible_play_hosts_all", [])
        )
        names = sorted({n for p in args["phases"] for n in (p.get("results") or ())})
        results = {}
        for host in hosts:
            seen = hostvars.get(host, {})
            results[host] = {name: seen.get(name) for name in names if name in seen}
        context = {
            "run_id": args["run_id"],
            "release_id": args["release_id"],
            "operator": args["operator"],
            "play": str(task_vars.get("ansible_play_name", "")),
        }
        log = AuditLog(args["audit_dir"])
        try:
            lines = phase_records(args["phases"], args["record"], results, context)
            lines += note_records(args["notes"], context)
            written = log.append(args["run_id"], lines)
            if args["gate_report"] is not None:
                result["gate_report"] = log.write_gate_report(args["gate_report"])
        except (AuditError, OSError) as exc:
            result.update(failed=True, msg="deploy audit: %s" % exc)
            return result
        result.update(changed=False, recorded=len(written), audit_log=log.path)
        return result
