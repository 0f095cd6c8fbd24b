#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_info
short_description: Describe a trading host's tradeops tree
version_added: "0.1.0"
description:
  - Reads the directory layout under O(root), the active release, the releases
    present, the tradeops library version and the service manager of a trading host.
  - Never changes anything.
extends_documentation_fragment:
  - tradeops.algo.host
author:
  - tradeops.algo maintainers (@tradeops)
options:
  require_layout:
    description:
      - Fail when the layout is incomplete, listing the missing directories.
    type: bool
    default: false
  min_free_bytes:
    description:
      - Fail when the filesystem of O(root) has less free space than this (a preflight check,
        for example the unpacked size of the release about to be staged).
    type: int
    default: 0
  status_url:
    description:
      - URL of the strategy's C(/status), read from the host. The release the running process
        reports is returned in RV(running).
    type: str
  verify_current:
    description:
      - Re-hash every file of the active release against its MANIFEST, and the MANIFEST against
        the digest the release log recorded at staging. A release changed since staging is
        reported in C(altered) of RV(release_state). Costs one read of the release.
    type: bool
    default: false
    version_added: "0.3.0"
  release_id:
    description:
      - The release whose config files O(config_files) describes (C({release_id}) in their paths).
    type: str
    version_added: "0.3.0"
  config_files:
    description:
      - The config files the controller rendered for O(release_id), by digest only. Those whose
        content on the host differs are listed in RV(config_differs).
    type: list
    elements: dict
    version_added: "0.3.0"
    suboptions:
      path:
        description: Path under C(shared/); C({release_id}) is replaced by O(release_id).
        type: str
        required: true
      sha256:
        description: The sha256 of the rendered content.
        type: str
        required: true
attributes:
  check_mode:
    support: full
    description: The module only reads.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
  platform:
    support: full
    platforms: posix
    description: Linux trading hosts.
notes:
  - Set O(require_layout=true) to use this module as a post-bootstrap check.
seealso:
  - module: ansible.builtin.stat
"""

EXAMPLES = r"""
- name: Read the state of the trading host
  tradeops.algo.host_info:
    root: /srv/tradeops
  register: host

- name: Fail unless the host was bootstrapped
  tradeops.algo.host_info:
    root: /srv/tradeops
    require_layout: true
"""

RETURN = r"""
root:
  description: The data root that was inspected.
  returned: always
  type: str
  sample: /srv/tradeops
exists:
  description: Whether the data root exists.
  returned: always
  type: bool
layout_ok:
  description: Whether every directory of the layout exists.
  returned: always
  type: bool
missing_dirs:
  description: Layout directories that are missing, relative to the root.
  returned: always
  type: list
  elements: str
  sample: [state/snapshots]
current_release:
  description: The release id that C(current) points to, or null when none is active.
  returned: always
  type: str
  sample: "20261124T120000Z-1.4.2"
releases:
  description: Release ids present under C(releases/).
  returned: always
  type: list
  elements: str
library_version:
  description: Version of the tradeops library that ran the module.
  returned: always
  type: str
  sample: 0.1.0
python:
  description: The Python interpreter that ran the module.
  returned: always
  type: str
service_manager:
  description: C(systemd) when systemd is PID 1, else C(supervisord).
  returned: always
  type: str
free_bytes:
  description: Free space on the filesystem of O(root), when it exists.
  returned: always
  type: int
release_state:
  description:
    - What the host really runs, read from the host (the deploy's plan and
      C(tradeops.algo.status) use it). C(current) and its status in the release log
      (C(current_status)); C(log_active), the releases the log says are active;
      C(rollback_target); C(drift), why the release log cannot explain C(current) (a release
      directory it never staged, one it pruned, a link outside C(releases/)), or null;
      C(pending), an activation a crash interrupted, which the next one completes, or null;
      C(altered), with O(verify_current), why the active release no longer is what was
      staged (a file or its MANIFEST changed on disk), or null; C(verified), whether it was
      re-hashed and matched; C(lock), the deploy lock's holder (owner, pid, host, since,
      release_id, run_id, stale, stale_reason) or null.
    - Null when O(root) does not exist.
  returned: always
  type: dict
host_library:
  description: The tradeops library that answered, and the host API it speaks.
  returned: always
  type: dict
  sample: {version: 0.4.0, api: 4, oldest_api: 2}
running:
  description:
    - What the running process reported on O(status_url), with C(release_id), C(version),
      C(pid), C(config_sha256) (the config it loaded, null when it does not say), and
      C(error) when it did not answer.
  returned: when O(status_url) is given
  type: dict
config_differs:
  description:
    - The O(config_files) whose content on the host is not the digest given (missing
      included), as paths under C(shared/).
  returned: when O(config_files) is given
  type: list
  elements: str
  version_added: "0.3.0"
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.algo.plugins.module_utils.specs import HOST_INFO
from ansible_collections.tradeops.algo.plugins.module_utils.tradeops_lib import run_handler


def main():
    run_handler(AnsibleModule(supports_check_mode=True, **HOST_INFO), "host_info")


if __name__ == "__main__":
    main()
