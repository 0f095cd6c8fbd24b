# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of tradeops.algo.release_plan: decide a release once, on the controller."""

from __future__ import annotations

import os
import socket
import tempfile
from datetime import datetime, timezone

import yaml
from ansible.plugins.action import ActionBase
from ansible_collections.tradeops.algo.plugins.module_utils.artifact_manifest import (
    ArtifactError,
    read_artifact,
    sha256_of,
)

ARGS = {
    "artifact": {"type": "path", "required": True},
    "version": {"type": "str", "required": True},
    "release_id": {"type": "str"},
    "templates": {"type": "list", "elements": "str", "default": ["config/refapp.yml.j2"]},
    "workdir": {"type": "path"},
}
# Variables the release was built with (tradeops release build --fault-mode ...).
DEFAULTS_MEMBER = "config/defaults.yml"


def parse_defaults(artifact, data):
    """The release's own variable defaults: a mapping, or {} when it ships none."""
    if data is None:
        return {}
    try:
        defaults = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ArtifactError("%s: %s is not YAML: %s" % (artifact, DEFAULTS_MEMBER, exc)) from exc
    if defaults is None:
        return {}
    if not isinstance(defaults, dict) or not all(isinstance(k, str) for k in defaults):
        raise ArtifactError(
            "%s: %s must map variable names to values" % (artifact, DEFAULTS_MEMBER)
        )
    return defaults


class ActionModule(ActionBase):
    """Read the artifact's MANIFEST and config templates in one pass; compute the ids."""

    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # unused since ansible-core 2.10
        _validation, args = self.validate_argument_spec(argument_spec=ARGS)
        artifact = os.path.abspath(os.path.expanduser(args["artifact"]))
        if not os.path.isfile(artifact):
            result.update(
                failed=True, msg="release artifact not found on the controller: %s" % artifact
            )
            return result
        try:
            manifest, found, unpacked = read_artifact(
                artifact, [*args["templates"], DEFAULTS_MEMBER], full=True
            )
            defaults = parse_defaults(artifact, found.pop(DEFAULTS_MEMBER, None))
        except ArtifactError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        missing = [name for name in args["templates"] if name not in found]
        if missing:
            result.update(failed=True, msg="%s holds no %s" % (artifact, ", ".join(missing)))
            return result
        if manifest["version"] != str(args["version"]):
            result.update(
                failed=True,
                msg="%s holds version %s, not %s: refusing to deploy"
                % (artifact, manifest["version"], args["version"]),
            )
            return result
        now = datetime.now(timezone.utc)
        run_id = now.strftime("%Y%m%dT%H%M%S.%fZ")
        release_id = args["release_id"] or "%s-%s" % (manifest["version"], manifest["digest"][:12])
        workdir = os.path.join(args["workdir"], run_id) if args["workdir"] else None
        if workdir:
            os.makedirs(workdir, mode=0o755, exist_ok=True)
        else:
            workdir = tempfile.mkdtemp(prefix="tradeops-release-")
        templates = {}
        for name, data in found.items():
            path = os.path.join(workdir, os.path.basename(name))
            with open(path, "wb") as handle:
                handle.write(data)
            templates[name] = path
        facts = {
            "release_id": release_id,
            "release_run_id": run_id,
            "release_manifest_digest": manifest["digest"],
            "release_manifest_version": manifest["version"],
            "release_artifact_path": artifact,
            "release_artifact_sha256": sha256_of(artifact),
            "release_artifact_bytes": os.path.getsize(artifact),
            "release_unpacked_bytes": unpacked,
            "release_templates": templates,
            "release_defaults": defaults,
            "release_controller_host": socket.gethostname(),
            "release_controller_pid": os.getppid(),
        }
        result.update(changed=False, ansible_facts=facts, **facts)
        return result
