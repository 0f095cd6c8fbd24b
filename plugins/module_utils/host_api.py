# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's side of the versioned host API (see docs/host-contract.md).

The collection needs exactly this tradeops library on every host, and speaks
this host API version to it. The library's side is ``tradeops.__version__``
and ``tradeops.modrun.api.API_VERSION``; tests/unit/modrun/test_api.py fails
when the two sides disagree.
"""

from __future__ import annotations

HOST_API_VERSION = 4
LIBRARY_VERSION = "0.4.0"
NEEDED = "the collection needs tradeops %s (host API %s)" % (LIBRARY_VERSION, HOST_API_VERSION)


def library_mismatch(answer):
    """Why the library that gave ``answer`` is not the one the collection needs; '' if it is.

    ``answer`` is a module result from the host: since host API 2 it carries
    ``host_library`` (``{"version", "api", ...}``); an older library's host_info
    answer carries only ``library_version``. Anything else (no answer, a failed
    read) is not judged here: ''.
    """
    if not isinstance(answer, dict):
        return ""
    library = answer.get("host_library")
    if isinstance(library, dict) and library.get("version"):
        version, api = library.get("version"), library.get("api")
    elif answer.get("library_version"):
        version, api = answer["library_version"], None
    else:
        return ""
    if version == LIBRARY_VERSION and api == HOST_API_VERSION:
        return ""
    return "its library is tradeops %s (host API %s); %s" % (
        version,
        api if api else "none: it predates the versioned host API",
        NEEDED,
    )
