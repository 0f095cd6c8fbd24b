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
    Every file is written from the artifact; a release shares no inode with another,
    so that a change to a staged file can never change the active release.
  - O(state=active) stages first when O(artifact) is given, then swaps C(current) by
    rename(2) of a new symlink and fsyncs the directory. It refuses a release that
    fails verification or is marked bad.
  - O(state=bad) marks a release bad in the release log, so that it is never activated.
  - O(state=absent) removes a release that is neither active nor the rollback target.
  - O(state=pruned) keeps the newest O(keep) releases by release-log order (never mtime),
    and always the active release and the rollback target.
extends_documentation_fragment:
  - tradeops.algo.host
author:
  - tradeops.algo maintainers (@tradeops)
options:
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
      - Required for O(state=staged) unless O(src) is given; optional for O(state=active).
    type: path
  src:
    description:
      - Path on the controller of the release artifact, sent once to the host with no
        per-file round trips. Through C(tradeops.modrun), the action plugin streams it on the
        module's own SSH channel into memory and checks its sha256. Through the module file,
        or when the artifact is larger than the variable C(tradeops_stream_max_bytes)
        (default 67108864, 64 MiB), it copies it to a temporary directory on the host,
        stages it from there as O(artifact), and removes the copy. RV(transfer) says which.
      - Mutually exclusive with O(artifact).
    type: path
  config_files:
    description:
      - Config files of the release, already rendered (for example with the
        P(ansible.builtin.template#lookup) lookup), written atomically under C(shared/)
        when they differ. With O(state=staged), and O(state=active) with an artifact.
      - The sha256 of each is returned in RV(config_sha256), for the deploy gate.
    type: list
    elements: dict
    suboptions:
      path:
        description: Path under C(shared/); C({release_id}) is replaced by the release id.
        type: str
        required: true
      content:
        description:
          - The file's content. Never logged or shown in a diff.
          - Exactly one of O(config_files[].content) and O(config_files[].sha256) is required.
        type: str
      sha256:
        description:
          - Instead of O(config_files[].content), only check that the file has this sha256
            (reported in RV(config_changed) when it differs; an error outside check mode).
          - The deploy gate passes the digests the stage wrote, so each config is rendered once.
        type: str
      mode:
        description: Octal permission bits.
        type: str
        default: "0640"
      group:
        description: Group that may read the file; unset leaves the group as is.
        type: str
  prune:
    description:
      - With O(state=active), prune to O(keep) releases after activating, keeping the active
        release and the rollback target.
    type: bool
    default: false
  replaced:
    description:
      - With O(state=active), the status logged for the release C(current) pointed to.
      - V(previous) makes it the rollback target.
      - V(rolled-back) is for a switch-back from a release that failed after cutover. That
        release is then never chosen as the rollback target, so a later rollback cannot
        return to it. It can still be deployed again on purpose.
    type: str
    choices: [previous, rolled-back]
    default: previous
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
      - Re-hash every file of a release that is already staged (O(state=staged)) or that is
        about to be activated (O(state=active)).
      - With V(false) an existing release is checked by its MANIFEST digest and its file list
        only, not re-hashed. The deploy verifies in full at its gate, right before cutover.
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
  - Give O(src) to copy the artifact from the controller, or copy it yourself and give O(artifact).
seealso:
  - module: tradeops.algo.deploy_lock
  - module: tradeops.algo.host_info
"""

EXAMPLES = r"""
- name: Stage release 1.4.2 from the controller's artifact, with its rendered config
  tradeops.algo.release:
    root: /srv/tradeops
    release_id: 1.4.2-5f0c2a9d31be
    src: build/releases/refapp-1.4.2.tar.gz
    config_files:
      - path: config/{release_id}/refapp.yml
        content: "{{ lookup('ansible.builtin.template', 'refapp.yml.j2') }}"
        group: tradeops
    state: staged
  register: staged

- name: Activate it, then keep five releases
  tradeops.algo.release:
    release_id: 1.4.2-5f0c2a9d31be
    state: active
    prune: true
    keep: 5

- name: Switch back from 1.4.2, which failed its post-verify, to 1.4.1
  tradeops.algo.release:
    release_id: 1.4.1-0a9d31be5f0c
    state: active
    replaced: rolled-back

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
transfer:
  description:
    - How the controller's O(src) reached the host. V(stream) on the module's own SSH
      channel into memory, V(copy) through a temporary file on the host.
  returned: when O(src) is given, outside check mode
  type: str
  sample: stream
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
written_files:
  description: Files of the new release written from the artifact.
  returned: when O(state=staged) created the release
  type: int
  sample: 2000
previous:
  description: The release C(current) pointed to before an activation.
  returned: when O(state=active)
  type: str
removed:
  description: Releases removed by O(state=pruned), O(state=absent) or O(prune).
  returned: when O(state) is pruned or absent, or O(prune) is true
  type: list
  elements: str
kept:
  description: Releases kept by O(state=pruned), with the reason for each.
  returned: when O(state=pruned), or O(prune) is true
  type: dict
config_sha256:
  description:
    - Path under C(shared/) to the sha256 of each config file on disk after the task
      (before it, in check mode).
  returned: when O(config_files) is given
  type: dict
config_expected_sha256:
  description: Path under C(shared/) to the sha256 of the content given in O(config_files).
  returned: when O(config_files) is given
  type: dict
config_changed:
  description: Config files that were (or would be) written.
  returned: when O(config_files) is given
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.algo.plugins.module_utils.specs import RELEASE
from ansible_collections.tradeops.algo.plugins.module_utils.tradeops_lib import run_handler


def main():
    run_handler(AnsibleModule(supports_check_mode=True, **RELEASE), "release")


if __name__ == "__main__":
    main()
