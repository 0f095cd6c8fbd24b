#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_lock
short_description: Take or release the per-host deploy lock
version_added: "0.1.0"
description:
  - Takes C(deploy.lock) under O(root) for one deploy run, recording the owner, the
    controller's pid and host, the time and the release.
  - A lock held by another run is never taken over. The failure names the holder, and
    says when the lock looks stale (older than O(ttl) or its process is gone).
  - Releasing a lock held by another run needs O(force=true) and a O(reason); every
    lock and unlock is written to the host's audit log C(state/audit.jsonl).
extends_documentation_fragment:
  - tradeops.algo.host
author:
  - tradeops.algo maintainers (@tradeops)
options:
  state:
    description: C(locked) takes the lock, C(unlocked) releases it.
    type: str
    choices: [locked, unlocked]
    default: locked
  run_id:
    description: Identifies one deploy run; the same on every host of that run.
    type: str
    required: true
  owner:
    description: The operator (or CI job) running the deploy.
    type: str
    required: true
  release_id:
    description: The release being deployed.
    type: str
    default: ""
  controller_host:
    description: Host name of the controller running the deploy.
    type: str
    default: ""
  controller_pid:
    description: Process id of the deploy on the controller.
    type: int
    default: 0
  ttl:
    description: Seconds after which a lock is reported as stale.
    type: int
    default: 3600
  force:
    description: Release a lock held by another run. Needs O(reason).
    type: bool
    default: false
  reason:
    description: Why a lock is forcibly released; written to the audit log.
    type: str
attributes:
  check_mode:
    support: full
    description: Reports whether the lock would be taken or released, and writes nothing.
  diff_mode:
    support: none
    description: The lock file's content is returned as RV(holder) instead.
  platform:
    support: full
    platforms: posix
    description: Linux trading hosts.
seealso:
  - module: tradeops.algo.release
"""

EXAMPLES = r"""
- name: Take the deploy lock
  tradeops.algo.deploy_lock:
    run_id: "{{ deploy_run_id }}"
    owner: alice
    release_id: 1.4.2-5f0c2a9d31be

- name: Break a stale lock, on the record
  tradeops.algo.deploy_lock:
    state: unlocked
    run_id: manual
    owner: bob
    force: true
    reason: controller crashed mid-deploy, incident 4712
"""

RETURN = r"""
acquired:
  description: Whether this run holds the lock after the task (or would, in check mode).
  returned: always
  type: bool
holder:
  description: The lock holder after the task (before it, when the task failed).
  returned: always
  type: dict
  sample: {owner: alice, pid: 4242, host: ctl-1, run_id: 20261124T120000Z-1a2b, stale: false}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.algo.plugins.module_utils.specs import DEPLOY_LOCK
from ansible_collections.tradeops.algo.plugins.module_utils.tradeops_lib import run_handler


def main():
    run_handler(AnsibleModule(supports_check_mode=True, **DEPLOY_LOCK), "deploy_lock")


if __name__ == "__main__":
    main()
