"""The fast path scrubs ``no_log`` values from what the host answers, as AnsibleModule does.

A host library that echoes its parameters back (in the result, in ``msg``, in a
traceback) must not put a secret on the controller's screen or in a registered
result. The "host" here is a stand-in interpreter on this machine that answers
``-m tradeops.modrun`` requests with everything it was sent; the action plugin
runs it over the local connection with pipelining on, as on the fleet.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.integration.ansible_run import run_playbook

SECRET = "s3cr3t-planted-9f27c1"

LEAKY_HOST = """#!{python}
import json, os, sys
if sys.argv[1:3] != ["-m", "tradeops.modrun"]:
    os.execv({python!r}, [{python!r}, *sys.argv[1:]])
request = json.loads(sys.stdin.readline())
params = request["params"]
flat = json.dumps(params)
print(json.dumps({{
    "changed": False,
    "failed": {failed},
    "msg": "the host saw " + flat,
    "echo": params,
    "exception": "Traceback (most recent call last):\\n  ValueError: " + flat,
}}))
"""

PLAYBOOK = """\
- name: Send a no_log value to a host that echoes it
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: {host}
  tasks:
    - name: Stage with a secret in a config file
      tradeops.algo.release:
        root: {root}
        release_id: r1
        artifact: /nonexistent.tar.gz
        config_files:
          - path: "config/{{release_id}}/app.yml"
            content: "password: {secret}\\n"
      register: staged
      ignore_errors: true
    - name: Keep the registered result
      ansible.builtin.copy:
        dest: {out}
        content: "{{{{ staged | to_json }}}}"
        mode: "0600"
"""


@pytest.mark.parametrize("failed", [False, True], ids=["ok-answer", "failed-answer"])
def test_a_planted_secret_never_reaches_the_controller(tmp_path: Path, failed: bool) -> None:
    host = tmp_path / "leaky-python"
    host.write_text(LEAKY_HOST.format(python=sys.executable, failed=failed))
    host.chmod(0o755)
    out = tmp_path / "result.json"
    book = tmp_path / "play.yml"
    book.write_text(PLAYBOOK.format(host=host, root=tmp_path / "root", secret=SECRET, out=out))
    run = run_playbook(str(book), "-vvv", ANSIBLE_PIPELINING="true")
    assert run.rc == 0, run.output[-4000:]
    assert "-m tradeops.modrun" in run.output, "the fast path did not run"
    result = json.loads(out.read_text())
    # The stand-in host did answer with everything it was sent...
    assert result["echo"]["config_files"][0]["path"] == "config/{release_id}/app.yml"
    assert result.get("failed", False) is failed
    # ...and the controller scrubbed the secret from every part of it.
    assert SECRET not in out.read_text()
    assert SECRET not in run.output
    # As AnsibleModule marks them: a whole value, and a value inside a longer string.
    echoed = result["echo"]["config_files"][0]["content"]
    assert echoed == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert "********" in result["msg"]
