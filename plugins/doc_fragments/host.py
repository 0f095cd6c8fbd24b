# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module that acts on a trading host's data root shares."""

from __future__ import annotations


class ModuleDocFragment:
    """The data root option and the library the modules need on the host."""

    DOCUMENTATION = r"""
options:
  root:
    description: The tradeops data root on the host.
    type: path
    default: /srv/tradeops
requirements:
  - The C(tradeops) Python library on the target, installed by the M(tradeops.algo.host) role.
"""
