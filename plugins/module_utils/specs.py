# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs of the collection's modules, shared with their action plugins.

The module validates with them under AnsiballZ; the action plugin validates
with them on the controller before it runs ``python -m tradeops.modrun`` on the
host. One spec, so both paths accept and refuse the same arguments.
"""

from __future__ import annotations

RELEASE = {
    "argument_spec": {
        "root": {"type": "path", "default": "/srv/tradeops"},
        "release_id": {"type": "str"},
        "state": {
            "type": "str",
            "default": "staged",
            "choices": ["staged", "active", "absent", "pruned", "bad"],
        },
        "artifact": {"type": "path"},
        "src": {"type": "path"},
        "config_files": {
            "type": "list",
            "elements": "dict",
            "options": {
                "path": {"type": "str", "required": True},
                "content": {"type": "str", "no_log": True},
                "sha256": {"type": "str"},
                "mode": {"type": "str", "default": "0640"},
                "group": {"type": "str"},
            },
            "required_one_of": [("content", "sha256")],
            "mutually_exclusive": [("content", "sha256")],
        },
        "prune": {"type": "bool", "default": False},
        "replaced": {"type": "str", "default": "previous", "choices": ["previous", "rolled-back"]},
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
    "mutually_exclusive": [("artifact", "src")],
    "required_if": [
        ("state", "staged", ["release_id"]),
        ("state", "active", ["release_id"]),
        ("state", "absent", ["release_id"]),
        ("state", "bad", ["release_id"]),
    ],
}

DEPLOY_LOCK = {
    "argument_spec": {
        "root": {"type": "path", "default": "/srv/tradeops"},
        "state": {"type": "str", "default": "locked", "choices": ["locked", "unlocked"]},
        "run_id": {"type": "str", "required": True},
        "owner": {"type": "str", "required": True},
        "release_id": {"type": "str", "default": ""},
        "controller_host": {"type": "str", "default": ""},
        "controller_pid": {"type": "int", "default": 0},
        "ttl": {"type": "int", "default": 3600},
        "force": {"type": "bool", "default": False},
        "reason": {"type": "str"},
    },
    "required_if": [("force", True, ["reason"])],
}

HOST_INFO = {
    "argument_spec": {
        "root": {"type": "path", "default": "/srv/tradeops"},
        "require_layout": {"type": "bool", "default": False},
        "min_free_bytes": {"type": "int", "default": 0},
        "status_url": {"type": "str"},
        "verify_current": {"type": "bool", "default": False},
        "release_id": {"type": "str"},
        "config_files": {
            "type": "list",
            "elements": "dict",
            "options": {
                "path": {"type": "str", "required": True},
                "sha256": {"type": "str", "required": True},
            },
        },
    },
    "required_by": {"config_files": "release_id"},
}

STRATEGY = {
    "argument_spec": {
        "root": {"type": "path", "default": "/srv/tradeops"},
        "name": {"type": "str", "required": True},
        "state": {
            "type": "str",
            "default": "started",
            "choices": ["started", "restarted", "stopped"],
        },
        "manager": {
            "type": "str",
            "default": "auto",
            "choices": ["auto", "supervisord", "systemd"],
        },
        "definition": {"type": "str"},
        "status_url": {"type": "str"},
        "release_id": {"type": "str"},
        "timeout": {"type": "float", "default": 30.0},
    },
    "required_by": {"release_id": "status_url"},
}

_RELEASE_ARGS = RELEASE["argument_spec"]
_STRATEGY_ARGS = STRATEGY["argument_spec"]
CUTOVER = {
    "argument_spec": {
        "root": _RELEASE_ARGS["root"],
        "release_id": {"type": "str", "required": True},
        "manifest_digest": _RELEASE_ARGS["manifest_digest"],
        "shared_links": _RELEASE_ARGS["shared_links"],
        "verify": _RELEASE_ARGS["verify"],
        "prune": _RELEASE_ARGS["prune"],
        "keep": _RELEASE_ARGS["keep"],
        "replaced": _RELEASE_ARGS["replaced"],
        "name": {"type": "str"},
        "manager": _STRATEGY_ARGS["manager"],
        "definition": _STRATEGY_ARGS["definition"],
        "status_url": _STRATEGY_ARGS["status_url"],
        "timeout": _STRATEGY_ARGS["timeout"],
        "config_sha256": {"type": "str"},
        "run_id": {"type": "str"},
    },
    "required_by": {"definition": "name", "status_url": "name", "config_sha256": "status_url"},
}

KILLSWITCH = {
    "argument_spec": {
        "root": {"type": "path", "default": "/srv/tradeops"},
        "state": {
            "type": "str",
            "default": "status",
            "choices": ["halted", "reducing", "active", "status"],
        },
        "who": {"type": "str"},
        "reason": {"type": "str"},
        "reason_code": {"type": "str", "default": "MANUAL"},
        "force": {"type": "bool", "default": False},
        "socket": {"type": "path"},
        "timeout": {"type": "float", "default": 2.0},
        "liveness_max_age": {"type": "float", "default": 1.0},
    },
    "required_if": [
        ("state", "halted", ["who", "reason"]),
        ("state", "reducing", ["who", "reason"]),
        ("state", "active", ["who", "reason"]),
    ],
}
