#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: strategy
short_description: Start, restart or stop the strategy process and read the release it runs
version_added: "0.1.0"
description:
  - Installs the strategy's definition (a supervisord program section or a systemd unit)
    and brings the process to O(state) under the host's service manager.
  - supervisord is the per-host one that M(tradeops.algo.host) starts, driven over its
    XML-RPC socket; systemd is driven with C(systemctl) and the unit C(tradeops-<name>.service).
  - With O(status_url) and O(release_id) it waits, at most O(timeout) seconds, until the
    running process itself reports that release (after a restart, from a new pid), and fails
    otherwise. This is how the deploy verifies the version, never from the C(current) symlink.
  - The wait ends early when the service manager gives up on the process (supervisord
    C(FATAL) or C(EXITED), systemd C(failed)). The message then gives the manager's
    reason and, under supervisord, the last lines the process wrote.
extends_documentation_fragment:
  - tradeops.algo.host
author:
  - tradeops.algo maintainers (@tradeops)
options:
  name:
    description: The program name under the service manager.
    type: str
    required: true
  state:
    description:
      - V(started) starts the process when it is down (and restarts it when O(definition) changed).
      - V(restarted) always restarts it. V(stopped) stops it and waits for the exit.
    type: str
    choices: [started, restarted, stopped]
    default: started
  manager:
    description: The service manager; V(auto) uses systemd when it runs as PID 1.
    type: str
    choices: [auto, supervisord, systemd]
    default: auto
  definition:
    description:
      - The full text of the supervisord program file (C(<root>/supervisor/conf.d/<name>.conf))
        or of the systemd unit. Written atomically when it differs, then loaded.
    type: str
  status_url:
    description:
      - URL of the process's C(/status), read from the host.
      - It reports C(release_id) and C(pid).
    type: str
  release_id:
    description: The release the process must report. Needs O(status_url).
    type: str
  timeout:
    description: Seconds to wait for the process to report O(release_id).
    type: float
    default: 30
attributes:
  check_mode:
    support: full
    description: Reports what would be written, started, restarted or stopped; changes nothing.
  diff_mode:
    support: full
    description: Shows the definition change and the process action.
  platform:
    support: full
    platforms: posix
    description: Linux trading hosts.
seealso:
  - module: tradeops.algo.release
  - module: tradeops.algo.host_info
"""

EXAMPLES = r"""
- name: Restart the strategy on the new release and wait until it reports it
  tradeops.algo.strategy:
    name: refapp
    state: restarted
    definition: "{{ lookup('ansible.builtin.template', 'supervisor-program.conf.j2') }}"
    status_url: http://127.0.0.1:8480/status
    release_id: 1.4.2-5f0c2a9d31be
    timeout: 30

- name: Stop it
  tradeops.algo.strategy:
    name: refapp
    state: stopped
"""

RETURN = r"""
manager:
  description: The service manager used.
  returned: always
  type: str
  sample: supervisord
action:
  description: What was (or in check mode would be) done, V(start), V(restart), V(stop) or V(none).
  returned: always
  type: str
definition_changed:
  description: Whether the definition was (or would be) rewritten.
  returned: always
  type: bool
state:
  description: The manager's state of the program after the task (before it, in check mode).
  returned: always
  type: str
  sample: RUNNING
pid:
  description: The program's main pid as the manager sees it.
  returned: always
  type: int
running:
  description:
    - What the process reported on O(status_url).
    - C(release_id), C(version), C(pid), and C(error) when it did not answer.
  returned: when O(status_url) is given
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.algo.plugins.module_utils.specs import STRATEGY
from ansible_collections.tradeops.algo.plugins.module_utils.tradeops_lib import run_handler


def main():
    run_handler(AnsibleModule(supports_check_mode=True, **STRATEGY), "strategy")


if __name__ == "__main__":
    main()
