# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Base of the collection's action plugins: run a module through ``tradeops.modrun``.

A module of this collection needs the ``tradeops`` library on the host (the
host role's venv, given as ``ansible_python_interpreter``). So instead of
shipping an AnsiballZ payload that re-compiles Ansible's module_utils on every
call (about 0.13 s of CPU each, measured), the action plugin validates the
arguments on the controller with the module's own spec and sends them over
the open SSH channel to ``<venv python> -m tradeops.modrun``, which runs the
same code as the module file and answers with the same result.

It falls back to the standard module run when pipelining is off, the task is
async, no interpreter is set, or the variable ``tradeops_modrun`` is false. A
host without the tradeops library fails with a message that names the fix:
the module file needs the library too, so there is nothing to fall back to.

The request carries the host API version (module_utils/host_api.py); the host
refuses a version or a parameter it does not know (tradeops.modrun.api). The
answer is scrubbed of the request's ``no_log`` values exactly as AnsibleModule
scrubs its own result, on every path, failures included.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import time

from ansible.module_utils.basic import remove_values
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible_collections.tradeops.algo.plugins.module_utils.host_api import (
    HOST_API_VERSION,
    LIBRARY_VERSION,
)

MISSING_MARKERS = ("No module named tradeops", "No module named 'tradeops")


def _tail(text, limit=2000):
    """The last ``limit`` characters of a command's output, for a message."""
    return (text or "").strip()[-limit:]


def _secrets(no_log_values):
    """The request's ``no_log`` values, and each as it reads inside a JSON string.

    A host that echoes its request escapes a multi-line value (a config file) as
    JSON would: AnsibleModule's plain match would miss it there.
    """
    values = set(no_log_values)
    values.update(json.dumps(value)[1:-1] for value in list(values) if isinstance(value, str))
    return values


class ModrunAction(ActionBase):
    """Run ``MODULE`` (validated against ``SPEC``) via ``python -m tradeops.modrun``."""

    MODULE = ""
    SPEC = None  # the module's spec from module_utils/specs.py
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # unused since ansible-core 2.10
        return self.run_module(result, dict(self._task.args), task_vars)

    def run_module(self, result, args, task_vars, stream=None, fallback=None):
        """Run the module with ``args``; update and return ``result`` (see ``_run_module``).

        The result's ``elapsed_s`` is the time the call took, as the controller saw it:
        the deploy's audit record sums it per phase.
        """
        started = time.monotonic()
        result = self._run_module(result, args, task_vars, stream, fallback)
        result["elapsed_s"] = round(time.monotonic() - started, 3)
        return result

    def _run_module(self, result, args, task_vars, stream=None, fallback=None):
        """Run the module with ``args``; update and return ``result``.

        ``stream``: a controller file sent after the request on the same channel,
        which the host receives into memory as the module's ``artifact`` (fast
        path only; the caller checks ``self._modrun_python`` first).
        ``fallback(result)``: what to do instead when the fast path cannot run
        (default: the module under AnsiballZ with ``args``).
        """
        if fallback is None:
            fallback = self._ansiballz(args, task_vars)
        python = self._modrun_python(task_vars or {})
        if python is None:
            return fallback(result)
        validated = ArgumentSpecValidator(**self.SPEC).validate(args)
        secrets = _secrets(validated._no_log_values)
        if validated.error_messages:
            result.update(
                failed=True, msg=remove_values("; ".join(validated.error_messages), secrets)
            )
            return result
        request = {
            "api": HOST_API_VERSION,
            "module": self.MODULE.rsplit(".", 1)[-1],
            "params": validated.validated_parameters,
            "check_mode": bool(self._task.check_mode),
            "diff": bool(self._task.diff),
        }
        payload = b""
        if stream is not None:
            with open(stream, "rb") as handle:
                payload = handle.read()
            request["artifact_stream"] = {
                "bytes": len(payload),
                "sha256": hashlib.sha256(payload).hexdigest(),
            }
        in_data = json.dumps(request).encode("utf-8") + b"\n" + payload
        command = "%s -m tradeops.modrun" % shlex.quote(python)
        res = self._low_level_execute_command(command, sudoable=True, in_data=in_data)
        answer = self._parse(res)
        if answer is None:
            output = _tail(res.get("stderr") or res.get("stdout"))
            if any(marker in output for marker in MISSING_MARKERS):
                msg = (
                    "%s has no tradeops library; the collection needs tradeops %s (host API %s): "
                    "run the tradeops.algo.host role" % (python, LIBRARY_VERSION, HOST_API_VERSION)
                )
            else:
                msg = "%s on the host failed (rc=%s): %s" % (command, res.get("rc"), output)
            result.update(failed=True, msg=remove_values(msg, secrets))
            return result
        answer.setdefault("changed", False)
        if not self._task.diff:
            answer.pop("diff", None)
        result.update(remove_values(answer, secrets))
        return result

    def _ansiballz(self, args, task_vars):
        """The standard module run, as a fallback."""

        def run(result):
            result.update(self._execute_module(self.MODULE, module_args=args, task_vars=task_vars))
            return result

        return run

    @staticmethod
    def _parse(res):
        lines = (res.get("stdout") or "").strip().splitlines()
        if not lines:
            return None
        try:
            answer = json.loads(lines[-1])
        except ValueError:
            return None
        return answer if isinstance(answer, dict) else None

    def _modrun_python(self, task_vars):
        """The host's interpreter when the fast path applies, else None."""
        enabled = self._templar.template(task_vars.get("tradeops_modrun", True))
        if not boolean(enabled, strict=False) or self._task.async_val:
            return None
        if getattr(self._connection._shell, "SHELL_FAMILY", "") != "sh":
            return None
        if not self._is_pipelining_enabled("new"):
            return None
        python = task_vars.get("ansible_python_interpreter")
        python = self._templar.template(python) if python else None
        if not python or not isinstance(python, str) or python.startswith("auto"):
            return None
        return python
