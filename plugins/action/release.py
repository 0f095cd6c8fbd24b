# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of tradeops.algo.release: copy the artifact from the controller.

With ``src``, the artifact goes to the host in one transfer: on the fast path
(plugin_utils/modrun.py) it follows the request on the same SSH channel and
the host stages it from memory; otherwise, or when it is larger than
``tradeops_stream_max_bytes`` (default 64 MiB, so that neither the controller's
forks nor a trading host hold a large artifact in memory), it is copied into
Ansible's remote temporary directory, staged from there, and removed. One
archive transfer and one module run per host, no per-file round trips. The
result's ``transfer`` says which. Without ``src`` the module runs as usual.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible_collections.tradeops.algo.plugins.module_utils.artifact_manifest import (
    ArtifactError,
    read_artifact,
)
from ansible_collections.tradeops.algo.plugins.module_utils.specs import RELEASE
from ansible_collections.tradeops.algo.plugins.plugin_utils.modrun import ModrunAction

STREAM_MAX_BYTES = 64 * 1024 * 1024


class ActionModule(ModrunAction):
    """Transfer ``src`` then run the release module on the host."""

    MODULE = "tradeops.algo.release"
    SPEC = RELEASE
    # Ansible would make a remote temporary directory before every run (an extra
    # command on the host, and one more to remove it); only a copy needs one, and
    # _copy_then_run makes it.
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = ActionBase.run(self, tmp, task_vars)
        del tmp  # unused since ansible-core 2.10
        args = dict(self._task.args)
        src = args.pop("src", None)
        if not src:
            return self.run_module(result, args, task_vars)
        if args.get("artifact"):
            result.update(failed=True, msg="src and artifact are mutually exclusive")
            return result
        try:
            local = self._find_needle("files", src)
        except AnsibleError as exc:
            result.update(failed=True, msg="release artifact not found on the controller: %s" % exc)
            return result
        if self._task.check_mode:
            return self._check_mode_plan(result, args, local, task_vars)
        limit = self._stream_max_bytes(task_vars or {})
        if isinstance(limit, str):
            result.update(failed=True, msg=limit)
            return result
        if os.path.getsize(local) > limit:
            return self._copy_then_run(result, args, local, task_vars)
        # Fast path: the artifact follows the request on the same channel; else a copy.
        result["transfer"] = "stream"
        return self.run_module(
            result,
            args,
            task_vars,
            stream=local,
            fallback=lambda res: self._copy_then_run(res, args, local, task_vars),
        )

    def _stream_max_bytes(self, task_vars):
        """``tradeops_stream_max_bytes`` as an int, or an error message."""
        raw = self._templar.template(task_vars.get("tradeops_stream_max_bytes", STREAM_MAX_BYTES))
        try:
            limit = int(raw)
        except (TypeError, ValueError):
            limit = -1
        if limit < 0:
            return "tradeops_stream_max_bytes must be a whole number of bytes >= 0; got %r" % (
                to_text(raw),
            )
        return limit

    def _copy_then_run(self, result, args, local, task_vars):
        """Copy the artifact into the remote temporary directory, stage it, remove it."""
        result["transfer"] = "copy"
        try:
            remote_dir = self._make_tmp_path()
            remote = self._connection._shell.join_path(remote_dir, os.path.basename(local))
            self._transfer_file(local, remote)
            self._fixup_perms2((remote_dir, remote))
            self.run_module(result, dict(args, artifact=remote), task_vars)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _check_mode_plan(self, result, args, local, task_vars):
        """Check mode copies nothing: plan on the host from the artifact's MANIFEST digest."""
        if not args.get("manifest_digest"):
            try:
                manifest, _found, _size = read_artifact(local)
            except ArtifactError as exc:
                result.update(failed=True, msg=str(exc))
                return result
            args["manifest_digest"] = manifest["digest"]
            args.setdefault("version", manifest["version"])
        return self.run_module(result, args, task_vars)
