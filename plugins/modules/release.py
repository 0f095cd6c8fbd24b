#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release
short_description: Stage, activate, mark bad, remove and prune atomic release directories
version_added: "0.1.0"
description:
  - Manages C(releases/<release_id>) under a trading host's O(root).
  - O(state=staged) unpacks an artifact already copied to the host into
    C(releases/.staging/<id>.partial), verifies the sha256 of every file against its
    MANIFEST (an extra or a missing file also fails), links the shared paths, fsyncs,
    and renames it to C(releases/<id>). A crash leaves no release or a complete one.
  - O(state=active) stages first when O(artifact) is given, then swaps C(current) by
    rename(2) of a new symlink and fsyncs the directory. It refuses a release that
    fails verification or is marked bad.
  - O(state=bad) marks a release bad in the release log, so that it is never activated.
  - O(state=absent) removes a release that is neither active nor the rollback target.
  - O(state=pruned) keeps the newest O(keep) releases by release-log order (never mtime),
    and always the active release and the rollback target.
requirements:
  - The C(tradeops) Python library on the target, installed by the M(tradeops.algo.host) role.
author:
  - tradeops.algo maintainers (@tradeops)
options:
  root:
    description: The tradeops data root on the host.
    type: path
    default: /srv/tradeops
  release_id:
    description:
      - The release id, the same on every host of a deploy.
      - Required unless O(state=pruned).
    type: str
  state:
    description: What the release should be.
    type: str
    choices: [staged, active, absent, pruned, bad]
    default: staged
  artifact:
    description:
      - Path on the host of the release artifact (tar.gz with a MANIFEST).
      - Required for O(state=staged); optional for O(state=active).
    type: path
  shared_links:
    description:
      - Links created inside the release, name to a path under C(shared/).
      - C({release_id}) in a value is replaced by the release id, so that each release
        has its own rendered config and code and config switch together.
    type: dict
    default: {log: log, secrets: secrets, etc: "config/{release_id}"}
  keep:
    description:
      - How many releases O(state=pruned) keeps, newest first by release-log order.
      - The active release and the rollback target are always kept besides.
    type: int
    default: 5
  reason:
    description: Why a release is marked bad; recorded in the release log.
    type: str
  manifest_digest:
    description:
      - The manifest digest the controller read from the artifact.
      - In check mode, when the artifact has not been copied to the host yet, the plan
        uses it instead of reading the artifact.
    type: str
  version:
    description: The release version, for the plan in that same case.
    type: str
  verify:
    description:
      - For O(state=staged), re-hash every file of a release that is already staged.
      - With V(false) an existing release is checked by its MANIFEST digest only (a quick
        live check); activation always verifies every file.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description:
      - Every state is planned first; in check mode the plan is reported and nothing is written.
  diff_mode:
    support: full
    description: Shows the C(current) symlink change, and the releases created or removed.
  platform:
    support: full
    platforms: posix
    description: Linux trading hosts.
notes:
  - Copy the artifact to the host first, for example with M(ansible.builtin.copy) into
    C(releases/.staging/); one archive transfer per host.
seealso:
  - module: tradeops.algo.deploy_lock
  - module: tradeops.algo.host_info
"""

EXAMPLES = r"""
- name: Stage release 1.4.2 from the copied artifact
  tradeops.algo.release:
    root: /srv/tradeops
    release_id: 1.4.2-5f0c2a9d31be
    artifact: /srv/tradeops/releases/.staging/refapp-1.4.2.tar.gz
    state: staged
  register: staged

- name: Activate it
  tradeops.algo.release:
    release_id: 1.4.2-5f0c2a9d31be
    state: active

- name: Never run 1.4.1 again
  tradeops.algo.release:
    release_id: 1.4.1-0a9d31be5f0c
    state: bad
    reason: order storm in canary, incident 4711

- name: Keep three releases
  tradeops.algo.release:
    state: pruned
    keep: 3
"""

RETURN = r"""
release_id:
  description: The release acted on.
  returned: when O(release_id) is given
  type: str
  sample: 1.4.2-5f0c2a9d31be
version:
  description: The version from the release's MANIFEST.
  returned: when O(state) is staged or active
  type: str
  sample: 1.4.2
manifest_digest:
  description: sha256 of the MANIFEST's file table; equal content, equal digest.
  returned: when O(state) is staged or active
  type: str
action:
  description: What was (or in check mode would be) done.
  returned: always
  type: str
  sample: create
current:
  description: The release C(current) points to after the task (before it, in check mode).
  returned: always
  type: str
previous:
  description: The release C(current) pointed to before an activation.
  returned: when O(state=active)
  type: str
removed:
  description: Releases removed by O(state=pruned) or O(state=absent).
  returned: when O(state) is pruned or absent
  type: list
  elements: str
kept:
  description: Releases kept by O(state=pruned), with the reason for each.
  returned: when O(state=pruned)
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.algo.plugins.module_utils.tradeops_lib import (
    HAS_TRADEOPS,
    require_tradeops,
)

if HAS_TRADEOPS:
    from tradeops.releases.service import ReleaseRequest, ReleaseServiceError, run_release


def main():
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "default": "/srv/tradeops"},
            "release_id": {"type": "str"},
            "state": {
                "type": "str",
                "default": "staged",
                "choices": ["staged", "active", "absent", "pruned", "bad"],
            },
            "artifact": {"type": "path"},
            "shared_links": {
                "type": "dict",
                "default": {"log": "log", "secrets": "secrets", "etc": "config/{release_id}"},
            },
            "keep": {"type": "int", "default": 5},
            "reason": {"type": "str"},
            "verify": {"type": "bool", "default": True},
            "manifest_digest": {"type": "str"},
            "version": {"type": "str"},
        },
        required_if=[
            ("state", "staged", ["release_id", "artifact"]),
            ("state", "active", ["release_id"]),
            ("state", "absent", ["release_id"]),
            ("state", "bad", ["release_id"]),
        ],
        supports_check_mode=True,
    )
    require_tradeops(module)
    request = ReleaseRequest(
        root=module.params["root"],
        state=module.params["state"],
        release_id=module.params["release_id"],
        artifact=module.params["artifact"],
        shared_links=module.params["shared_links"],
        keep=module.params["keep"],
        reason=module.params["reason"],
        verify=module.params["verify"],
        manifest_digest=module.params["manifest_digest"],
        version=module.params["version"],
    )
    try:
        outcome = run_release(request, check_mode=module.check_mode)
    except ReleaseServiceError as exc:
        module.fail_json(msg=str(exc), release_id=module.params["release_id"])
    result = dict(outcome.result)
    result["changed"] = outcome.changed
    if module._diff and outcome.diff:
        result["diff"] = outcome.diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
