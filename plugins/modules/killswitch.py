#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: killswitch
short_description: Halt, reduce or reset a trading host through its kill-switch agent
version_added: "0.4.0"
description:
  - Brings the host's trading state (C(ACTIVE), C(REDUCING), C(HALTED)) to O(state) through the
    local kill-switch agent (C(tradeops agent run), installed by the
    C(tradeops.algo.killswitch_agent) role) over its Unix socket, or only reads it with
    O(state=status).
  - A state stricter than the current one is a trip (C(halt) or C(reduce)); a looser one is a
    C(reset), which the agent refuses while the condition that tripped still holds unless
    O(force=true). Every change is audited on the host with O(who) and O(reason).
  - With the agent down, O(state=halted) still halts the host the way C(tradeops agent halt) does.
    The state machine writes C(HALTED) into the trading-state file itself (reason
    C(AGENT_DOWN)), audited with C(via=module-fallback). Nothing is cancelled or flattened on that
    path, and the task warns so. A reset and a reduce go through the agent only.
  - This module serves runbooks and is the fallback path of the fleet kill
    (C(tradeops kill) talks to the agents directly); see the C(tradeops.algo.kill) playbook.
extends_documentation_fragment:
  - tradeops.algo.host
author:
  - tradeops.algo maintainers (@tradeops)
options:
  state:
    description:
      - V(halted), V(reducing) or V(active) bring the host to that trading state.
      - V(status) reads the state, the agent and its liveness beat, and changes nothing.
    type: str
    choices: [halted, reducing, active, status]
    default: status
  who:
    description:
      - The operator identity recorded in the audit log. Required for every state but V(status).
    type: str
  reason:
    description: Why, recorded in the audit log. Required for every state but V(status).
    type: str
  reason_code:
    description:
      - The reason code of a trip (V(halted) or V(reducing)), for example V(MANUAL), V(DEPLOY)
        or V(ROLLBACK). Ignored by a reset.
    type: str
    default: MANUAL
  force:
    description:
      - Reset even while a condition that tripped the host still holds. Audited as forced.
    type: bool
    default: false
  socket:
    description: The agent's Unix socket. Defaults to C(<root>/run/agent.sock).
    type: path
  timeout:
    description: Seconds to wait for the agent's answer to each request.
    type: float
    default: 2.0
  liveness_max_age:
    description:
      - The age in seconds beyond which the agent's liveness beat (C(<root>/run/agent-liveness))
        is reported as not alive in RV(liveness).
    type: float
    default: 1.0
attributes:
  check_mode:
    support: full
    description: Reads the state and reports the action that would be taken; sends no command.
  diff_mode:
    support: full
    description: The trading state before and after.
  platform:
    support: full
    platforms: posix
    description: Linux trading hosts.
notes:
  - The agent allows only the uids and gids of its config on its socket (root included); the
    role allows uid 0 by default, so run the module as root.
  - C(changed) is true only when the trading state changed. Halting a host already C(HALTED)
    sends nothing and is not a change.
seealso:
  - module: tradeops.algo.host_info
"""

EXAMPLES = r"""
- name: Halt the host now
  tradeops.algo.killswitch:
    state: halted
    who: alice
    reason: runaway orders on ESZ5

- name: Read the trading state and whether the agent is alive
  tradeops.algo.killswitch:
    state: status
  register: ks

- name: Lift the halt once the cause is understood
  tradeops.algo.killswitch:
    state: active
    who: alice
    reason: "INC-4211: fat-finger order cancelled, limits checked"

- name: Reset while a breaker condition still holds (audited as forced)
  tradeops.algo.killswitch:
    state: reducing
    who: alice
    reason: drawdown understood, reduce-only until the close
    force: true
"""

RETURN = r"""
state:
  description: The trading state after the task (in check mode, the state it would reach).
  returned: always
  type: str
  sample: HALTED
previous_state:
  description: The trading state before the task.
  returned: always
  type: str
  sample: ACTIVE
action:
  description: The agent command sent (or that would be), V(halt), V(reduce), V(reset) or V(none).
  returned: always
  type: str
via:
  description:
    - V(agent) when the agent answered; V(state-file) when it did not and the state was read
      from the trading-state file; V(module-fallback) when the halt was written without it.
  returned: always
  type: str
agent_reachable:
  description: Whether the agent answered on its socket.
  returned: always
  type: bool
agent:
  description:
    - The agent's own description (pid, version, uptime_s, tcp), or null when it did not answer.
  returned: always
  type: dict
agent_error:
  description: Why the agent did not answer, or null.
  returned: always
  type: str
trading_state:
  description:
    - The agent's snapshot (state, reasons, who, why, since, generation, forced), or the
      trading-state file's record when the agent did not answer.
  returned: always
  type: dict
transition:
  description:
    - The agent's answer to the command (before, after, changed, scope; for a reset also
      cleared, rearmed, not_reset, forced), or the fallback's trip.
  returned: when a command was sent
  type: dict
liveness:
  description:
    - The agent's liveness beat, with C(alive) (beat within O(liveness_max_age)), C(age_s),
      C(pid), C(error).
  returned: always
  type: dict
elapsed_ms:
  description: Time the module took on the host, reading and acting, in milliseconds.
  returned: success
  type: float
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.algo.plugins.module_utils.specs import KILLSWITCH
from ansible_collections.tradeops.algo.plugins.module_utils.tradeops_lib import run_handler


def main():
    run_handler(AnsibleModule(supports_check_mode=True, **KILLSWITCH), "killswitch")


if __name__ == "__main__":
    main()
