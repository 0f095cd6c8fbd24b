#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: tradeops.algo maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_plan
short_description: Decide a release once, on the controller, from its artifact
version_added: "0.1.0"
description:
  - Runs on the controller only (an action plugin). Reads the artifact's MANIFEST and its
    config templates in one streaming pass, checks the version, and computes the release
    id and the run id that every host and every C(serial) batch of the deploy use.
  - Sets them as facts of the host it runs on (the deploy runs it on C(localhost)).
  - The controller needs no C(tradeops) library for this.
author:
  - tradeops.algo maintainers (@tradeops)
options:
  artifact:
    description: The release artifact (tar.gz with a MANIFEST) on the controller.
    type: path
    required: true
  version:
    description: The version the MANIFEST must hold; anything else is refused.
    type: str
    required: true
  release_id:
    description: Use this release id instead of C(<version>-<first 12 of the manifest digest>).
    type: str
  templates:
    description: Members of the artifact to extract for rendering on the controller.
    type: list
    elements: str
    default: [config/refapp.yml.j2]
  workdir:
    description:
      - Directory on the controller for the extracted templates, in a subdirectory per run
        (kept with the run's audit records). A new temporary directory when unset.
    type: path
attributes:
  action:
    support: full
    description: Runs as an action plugin on the controller; nothing runs on a host.
  check_mode:
    support: full
    description: Reads only; it runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is nothing to diff.
  platform:
    support: full
    platforms: posix
    description: The controller.
"""

EXAMPLES = r"""
- name: Decide the release once
  tradeops.algo.release_plan:
    artifact: build/releases/refapp-1.4.2.tar.gz
    version: 1.4.2
    workdir: ~/.tradeops/audit/runs
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
release_id:
  description: The release id, the same for every host and batch of the run.
  returned: success
  type: str
  sample: 1.4.2-5f0c2a9d31be
release_run_id:
  description: The run id (UTC time with microseconds).
  returned: success
  type: str
  sample: 20261124T120000.123456Z
release_manifest_digest:
  description: sha256 of the MANIFEST's file table.
  returned: success
  type: str
release_manifest_version:
  description: The version in the MANIFEST.
  returned: success
  type: str
release_artifact_path:
  description: Absolute path of the artifact.
  returned: success
  type: str
release_artifact_sha256:
  description: sha256 of the artifact file.
  returned: success
  type: str
release_artifact_bytes:
  description: Size of the artifact file.
  returned: success
  type: int
release_unpacked_bytes:
  description: Sum of the sizes of the files in the artifact, for the preflight's free-space check.
  returned: success
  type: int
release_templates:
  description: Member name to the path of its extracted copy on the controller.
  returned: success
  type: dict
release_defaults:
  description:
    - The variables in the artifact's C(config/defaults.yml), for example the fault mode a
      drill release was built with (C(tradeops release build --fault-mode)). Empty when the
      artifact has none. The refapp config template uses them where the inventory sets nothing.
  returned: success
  type: dict
  sample: {refapp_fault_mode: runaway, release_version: 1.4.2}
release_controller_host:
  description: The controller's host name, recorded in the deploy lock.
  returned: success
  type: str
release_controller_pid:
  description: The pid of the C(ansible-playbook) process, recorded in the deploy lock.
  returned: success
  type: int
"""
