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
    staged another release id or manifest digest, or holds another config than expected.
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


def gate_offenders(reports, release_id, manifest_digest, live_hosts):
    """Return {host: reason} for every host that fails the gate."""
    offenders = {}
    live = set(live_hosts)
    for host in sorted(reports):
        report = reports[host]
        if isinstance(report, dict) and report.get("failed"):
            offenders[host] = "failed before the gate: %s" % report["failed"]
        elif host not in live:
            offenders[host] = "failed or unreachable before the gate"
        elif not isinstance(report, dict) or not report:
            offenders[host] = "reported nothing"
        elif report.get("release_id") != release_id:
            staged = report.get("release_id")
            offenders[host] = "staged release %s, expected %s" % (staged, release_id)
        elif report.get("manifest_digest") != manifest_digest:
            offenders[host] = "manifest digest %s, expected %s" % (
                str(report.get("manifest_digest"))[:12],
                manifest_digest[:12],
            )
        elif report.get("config_sha1") != report.get("expected_config_sha1"):
            offenders[host] = "config digest %s, expected %s" % (
                str(report.get("config_sha1"))[:12],
                str(report.get("expected_config_sha1"))[:12],
            )
    return offenders


class FilterModule:
    """Ansible filter plugin."""

    def filters(self):
        return {"gate_offenders": gate_offenders}
