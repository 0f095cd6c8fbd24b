#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_audit
short_description: Record the deploy's phases and its gate report on the controller
version_added: "0.2.0"
description:
  - Runs on the controller only (an action plugin). The C(tradeops.algo.deploy) playbook calls it
    at its checkpoints, so that the audit record and the gate report exist whatever C(ansible.cfg)
    the user has and however the playbook is run (C(ansible-playbook), C(ansible-runner), AWX).
  - Judges each phase named in O(record), for each host in O(hosts), from the results that the
    phase registered on that host (the phase list O(phases) names them) as C(failed),
    C(unreachable), C(changed) or C(ok), with the time the collection's modules took and the
    failure message.
  - Appends one JSON line per host and phase to C(deploy-audit.jsonl) in O(audit_dir), fsync'd,
    each host and phase of a run once, however many checkpoints see it. A phase that has not run
    on a host yet is not recorded.
author:
  - tradeops.algo maintainers (@tradeops)
options:
  audit_dir:
    description: Directory of the audit log on the controller.
    type: path
    required: true
  run_id:
    description: The deploy run.
    type: str
    required: true
  release_id:
    description: The release being deployed.
    type: str
    default: ""
  operator:
    description: Who runs the deploy.
    type: str
    default: unknown
  phases:
    description:
      - The deploy's phases in order, each C({name, results}) (the role's C(release_phases)).
    type: list
    elements: dict
    required: true
  record:
    description: Names of the phases to record now; each must be in O(phases).
    type: list
    elements: str
    default: []
  notes:
    description:
      - Events the plan found, one audit line each, C({host, event, detail}) (for example a
        refusal for drift, or a repair with the operator's reason). Each (host, event) is
        recorded once per run.
    type: list
    elements: dict
    default: []
    version_added: "0.3.0"
  hosts:
    description: Hosts to record (default C(ansible_play_hosts_all)).
    type: list
    elements: str
  gate_report:
    description: The gate's report, written as C(gate-<run_id>.json) in O(audit_dir).
    type: dict
attributes:
  check_mode:
    support: full
    description: The audit is the controller's record of the run; it is written in check mode too.
  diff_mode:
    support: none
    description: Nothing on a host changes.
  platform:
    support: full
    platforms: posix
    description: Runs on the controller.
seealso:
  - module: tradeops.algo.release
"""

EXAMPLES = r"""
- name: Record the phases before cutover
  tradeops.algo.deploy_audit:
    audit_dir: ~/.tradeops/audit
    run_id: "{{ release_run_id }}"
    release_id: "{{ release_id }}"
    phases: "{{ release_phases }}"
    record: [plan, lock, preflight, stage, gate]
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
recorded:
  description: Lines appended by this call.
  returned: success
  type: int
audit_log:
  description: Path of the audit log.
  returned: success
  type: str
gate_report:
  description: Path of the gate report, when O(gate_report) was given.
  returned: when O(gate_report) is given
  type: str
"""
