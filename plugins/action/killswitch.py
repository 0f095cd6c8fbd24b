# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of tradeops.algo.killswitch: run it through tradeops.modrun on the host."""

from __future__ import annotations

from ansible_collections.tradeops.algo.plugins.module_utils.specs import KILLSWITCH
from ansible_collections.tradeops.algo.plugins.plugin_utils.modrun import ModrunAction


class ActionModule(ModrunAction):
    """See plugins/plugin_utils/modrun.py."""

    MODULE = "tradeops.algo.killswitch"
    SPEC = KILLSWITCH
