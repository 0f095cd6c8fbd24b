# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host contract as a filter: which hosts run a library the collection does not need."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: library_offenders
short_description: Name the hosts whose tradeops library is not the one the collection needs
version_added: "0.2.0"
description:
  - Reads what every targeted host answered (a C(tradeops.algo.host_info) result) and
    returns a dict of host name to why its library differs; empty when every host has
    the library the collection needs.
  - The deploy's plan phase uses it to refuse a run before anything is staged or locked.
  - A host that gave no answer, or whose read failed for another reason, is not judged
    here; the preflight reports it.
author:
  - tradeops.algo maintainers (@tradeops)
options:
  _input:
    description: Host name to its C(tradeops.algo.host_info) result (or null).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Refuse hosts with another library
  ansible.builtin.fail:
    msg: "{{ infos | tradeops.algo.library_offenders }}"
  when: infos | tradeops.algo.library_offenders | length > 0
"""

RETURN = r"""
_value:
  description: Host name to the reason its library is refused.
  type: dict
"""

from ansible_collections.tradeops.algo.plugins.module_utils.host_api import library_mismatch


def library_offenders(answers):
    """Return {host: why} for every host whose library is not the collection's."""
    offenders = {}
    for host in sorted(answers or {}):
        problem = library_mismatch(answers[host])
        if problem:
            offenders[host] = problem
    return offenders


class FilterModule:
    """Ansible filter plugin."""

    def filters(self):
        return {"library_offenders": library_offenders}
