#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cutover
short_description: Swap a host to a staged release and restart the strategy on it, in one call
version_added: "0.1.0"
description:
  - The deploy's cutover on one host, in one call. First it activates O(release_id) as
    M(tradeops.algo.release) does with O(ignore:state=active). It swaps C(current) by
    rename(2), logs the release, and prunes when O(prune) is set.
  - Then, with O(name), it restarts the strategy as M(tradeops.algo.strategy) does with
    O(ignore:state=restarted). With O(status_url), it waits until the new process itself
    reports O(release_id).
  - A host that already runs O(release_id) (C(current) unchanged and the process reporting
    it) is not restarted, unless O(definition) changed. A deploy that converges a partly
    updated fleet leaves the hosts that were right trading.
  - When the restart or the wait fails, C(current) stays on the new release. The failed
    result still carries RV(previous), and C(changed) is true when C(current) moved, so
    the caller can switch the host back. Setting O(replaced=rolled-back) on that
    switch-back logs the failed release so that it never becomes the rollback target.
  - The blue/green warm-standby handover will replace the plain restart here.
extends_documentation_fragment:
  - tradeops.algo.host
author:
  - tradeops.algo maintainers (@tradeops)
options:
  release_id:
    description: The staged release to cut over to.
    type: str
    required: true
  manifest_digest:
    description:
      - The manifest digest the controller read from the artifact. In check mode, before
        any stage, the plan uses it.
    type: str
  shared_links:
    description: As in M(tradeops.algo.release); the links staging added, skipped by the checks.
    type: dict
    default: {log: log, secrets: secrets, etc: "config/{release_id}"}
  verify:
    description:
      - Re-hash every file before the swap. With V(false), check the MANIFEST digest and
        the file list only. The deploy passes V(false), because its gate has just re-hashed
        every file.
    type: bool
    default: true
  prune:
    description:
      - Prune to O(keep) releases after the swap, keeping the active release and the
        rollback target.
    type: bool
    default: false
  keep:
    description: How many releases O(prune) keeps, newest first by release-log order.
    type: int
    default: 5
  replaced:
    description:
      - The status logged for the release C(current) pointed to.
      - V(previous) makes it the rollback target. Use V(rolled-back) for a switch-back from
        a release that failed.
    type: str
    choices: [previous, rolled-back]
    default: previous
  name:
    description: The strategy's program name under the service manager. Without it, only the swap.
    type: str
  manager:
    description: The service manager; V(auto) uses systemd when it runs as PID 1.
    type: str
    choices: [auto, supervisord, systemd]
    default: auto
  definition:
    description: The program's definition, as in M(tradeops.algo.strategy). Needs O(name).
    type: str
  status_url:
    description:
      - URL of the process's C(/status). When given, the module waits until the new
        process reports O(release_id). Needs O(name).
    type: str
  timeout:
    description:
      - Seconds to wait for the new process to report O(release_id). The wait ends early
        when the service manager gives up on the process.
    type: float
    default: 30
  config_sha256:
    description:
      - The sha256 of the config the strategy must run with (what the controller rendered).
        A host that already runs O(release_id) is restarted unless its process reports this
        config (C(config_sha256) on O(status_url)); a process that reports none is restarted.
    type: str
    version_added: "0.3.0"
  run_id:
    description:
      - The deploy run doing this cutover. When given, the host refuses to cut over unless
        its deploy lock is held by this run, so that a remote call orphaned by a dead
        controller cannot swap C(current) after another run took the lock over.
    type: str
    version_added: "0.3.0"
attributes:
  check_mode:
    support: full
    description: Reports the swap, the prune and the restart it would do; changes nothing.
  diff_mode:
    support: full
    description: Shows the C(current) change, the releases pruned, and the process action.
  platform:
    support: full
    platforms: posix
    description: Linux trading hosts.
seealso:
  - module: tradeops.algo.release
  - module: tradeops.algo.strategy
"""

EXAMPLES = r"""
- name: Cut over to the staged release and wait until the strategy reports it
  tradeops.algo.cutover:
    release_id: 1.4.2-5f0c2a9d31be
    verify: false  # re-hashed by the gate just before
    prune: true
    name: refapp
    definition: "{{ lookup('ansible.builtin.template', 'supervisor-program.conf.j2') }}"
    status_url: http://127.0.0.1:8480/status
    timeout: 30

- name: Switch back to the release that ran before
  tradeops.algo.cutover:
    release_id: 1.4.1-0a9d31be5f0c
    replaced: rolled-back
    name: refapp
    status_url: http://127.0.0.1:8480/status
"""

RETURN = r"""
release_id:
  description: The release cut over to.
  returned: always
  type: str
  sample: 1.4.2-5f0c2a9d31be
version:
  description: The version from the release's MANIFEST.
  returned: success
  type: str
manifest_digest:
  description: sha256 of the MANIFEST's file table.
  returned: success
  type: str
action:
  description: What the swap did (or would do), as in M(tradeops.algo.release).
  returned: success
  type: str
  sample: activate
previous:
  description: The release C(current) pointed to before the swap; the switch-back target.
  returned: success, and on a failure after the swap
  type: str
current:
  description: The release C(current) points to after the task (before it, in check mode).
  returned: success, and on a failure after the swap
  type: str
removed:
  description: Releases removed by O(prune).
  returned: when O(prune) is true
  type: list
  elements: str
kept:
  description: Releases kept by O(prune), with the reason for each.
  returned: when O(prune) is true
  type: dict
strategy:
  description:
    - The restart, as M(tradeops.algo.strategy) returns it. Its C(running) key is what the
      new process reported on O(status_url).
  returned: when O(name) is given and the restart succeeded
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.algo.plugins.module_utils.specs import CUTOVER
from ansible_collections.tradeops.algo.plugins.module_utils.tradeops_lib import run_handler


def main():
    run_handler(AnsibleModule(supports_check_mode=True, **CUTOVER), "cutover")


if __name__ == "__main__":
    main()
