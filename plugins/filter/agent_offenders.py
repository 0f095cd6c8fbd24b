# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which hosts have no live kill-switch agent: nothing may trade on them."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: agent_offenders
short_description: Name the hosts whose kill-switch agent is not live
version_added: "0.4.0"
description:
  - Reads what every targeted host answered to C(tradeops.algo.killswitch) with
    C(state=status) and returns a dict of host name to why its agent is not live;
    empty when every host's agent answered on its socket and beat its liveness file
    within the module's C(liveness_max_age).
  - The deploy's plan phase uses it to refuse a run before anything is locked or staged
    (C(release_require_agent)), so that a release never trades on a host without its agent.
  - A host with no answer at all (unreachable, skipped) is named too.
author:
  - tradeops.algo maintainers (@tradeops)
options:
  _input:
    description: Host name to its C(tradeops.algo.killswitch) status result (or null).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Refuse hosts without a live agent
  ansible.builtin.fail:
    msg: "{{ answers | tradeops.algo.agent_offenders }}"
  when: answers | tradeops.algo.agent_offenders | length > 0
"""

RETURN = r"""
_value:
  description: Host name to the reason its agent is not live.
  type: dict
"""


def agent_problem(answer):
    """Why this killswitch status answer shows no live agent, or None when it is live."""
    if not isinstance(answer, dict) or answer.get("skipped"):
        return "no answer from the host"
    if answer.get("unreachable"):
        return "the host is unreachable: %s" % answer.get("msg", "")
    if answer.get("failed"):
        return "the agent could not be read: %s" % answer.get("msg", "")
    if not answer.get("agent_reachable"):
        return "the agent does not answer on its socket (%s)" % answer.get("agent_error")
    liveness = answer.get("liveness") or {}
    if not liveness.get("alive"):
        return "the agent's liveness beat is not fresh (%s)" % liveness.get("error")
    return None


def agent_offenders(answers):
    """Return {host: why} for every host without a live kill-switch agent."""
    offenders = {}
    for host in sorted(answers or {}):
        problem = agent_problem(answers[host])
        if problem:
            offenders[host] = problem
    return offenders


class FilterModule:
    """Ansible filter plugin."""

    def filters(self):
        return {"agent_offenders": agent_offenders}
