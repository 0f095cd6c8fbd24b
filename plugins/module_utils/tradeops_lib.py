# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Import guard for the tradeops library that the host role installs on every host,
and the common body of the collection's modules."""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.tradeops.algo.plugins.module_utils.host_api import (
    HOST_API_VERSION,
    LIBRARY_VERSION,
)

try:
    import tradeops

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
    """Send the module's parameters to ``tradeops.modrun`` as a host API request; answer.

    The action plugins' fast path (``python -m tradeops.modrun``) sends the same
    request, so both ways give the same result and the same refusals.
    """
    require_tradeops(module)
    try:
        from tradeops.modrun.api import handle  # pylint: disable=import-outside-toplevel
    except ImportError:
        module.fail_json(
            msg="the tradeops library on this host (%s) predates the versioned host API; the "
            "collection needs tradeops %s (host API %s): run the tradeops.algo.host role"
            % (getattr(tradeops, "__version__", "unknown"), LIBRARY_VERSION, HOST_API_VERSION)
        )
    result = handle(
        {
            "api": HOST_API_VERSION,
            "module": name,
            "params": module.params,
            "check_mode": module.check_mode,
            "diff": module._diff,
        }
    )
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)
