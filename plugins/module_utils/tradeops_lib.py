# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Import guard for the tradeops library that the host role installs on every host,
and the common body of the collection's modules."""

from __future__ import annotations

import importlib
import traceback

from ansible.module_utils.basic import missing_required_lib

try:
    import tradeops  # noqa: F401  pylint: disable=unused-import

    HAS_TRADEOPS = True
    TRADEOPS_IMPORT_ERROR = None
except ImportError:
    HAS_TRADEOPS = False
    TRADEOPS_IMPORT_ERROR = traceback.format_exc()


def require_tradeops(module):
    """Fail the module with a useful message when the library is missing."""
    if not HAS_TRADEOPS:
        module.fail_json(
            msg=missing_required_lib(
                "tradeops",
                reason="run the tradeops.algo.host role first and use its venv as "
                "ansible_python_interpreter",
            ),
            exception=TRADEOPS_IMPORT_ERROR,
        )


def run_handler(module, name):
    """Run ``tradeops.modrun.<name>`` on the module's parameters and answer with its result.

    The same handler runs under ``python -m tradeops.modrun`` (the action plugins'
    fast path), so both ways give the same result.
    """
    require_tradeops(module)
    handler = importlib.import_module("tradeops.modrun." + name)
    result = handler.run(module.params, module.check_mode, module._diff)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)
