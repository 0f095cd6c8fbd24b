"""``python -m tradeops.modrun``: dispatch, refusals, and one answer for every request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import tradeops.modrun.host_info
import tradeops.modrun.release
from tests.unit.modrun.conftest import handle
from tradeops.modrun.__main__ import HANDLERS
from tradeops.modrun.api import API_VERSION
from tradeops.releases.layout import Layout

from .conftest import REPO, host_info_params, modrun_answer, run_modrun


def test_the_handlers_are_the_collection_modules() -> None:
    assert (
        frozenset({"cutover", "deploy_lock", "host_info", "killswitch", "release", "strategy"})
        == HANDLERS
    )
    modules = REPO / "plugins" / "modules"
    run_by_modrun = {p.stem for p in modules.glob("*.py") if "run_handler(" in p.read_text()}
    assert run_by_modrun == HANDLERS


@pytest.mark.parametrize("name", [None, "", "copy", "HOST_INFO", "__main__", "modrun"])
def test_an_unknown_module_fails(name: Any) -> None:
    result = handle({"api": API_VERSION, "module": name, "params": {}})
    assert result == {"failed": True, "msg": f"tradeops.modrun has no module {name!r}"}


@pytest.mark.parametrize("params", [None, [], ["root"], "root=/srv", 3])
def test_params_that_are_not_a_mapping_fail(params: Any) -> None:
    result = handle({"api": API_VERSION, "module": "host_info", "params": params})
    assert result == {"failed": True, "msg": "tradeops.modrun: params must be a mapping"}


def test_a_handler_result_is_returned_as_is(layout: Layout) -> None:
    result = handle(
        {"api": API_VERSION, "module": "host_info", "params": host_info_params(layout.root)}
    )
    assert result["changed"] is False
    assert "failed" not in result
    assert result["root"] == str(layout.root)


def test_check_mode_and_diff_reach_the_handler(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[Any, bool, bool]] = []

    def fake_run(params: Any, check_mode: bool, diff: bool) -> dict[str, Any]:
        seen.append((params, check_mode, diff))
        return {"changed": False}

    monkeypatch.setattr(tradeops.modrun.host_info, "run", fake_run)
    params = {"root": str(layout.root), "min_free_bytes": 7}
    request = {"api": API_VERSION, "module": "host_info", "params": params}
    handle({**request, "check_mode": 1, "diff": "yes"})
    handle(request)
    expected = tradeops.modrun.host_info.HostInfoParams(root=str(layout.root), min_free_bytes=7)
    assert seen == [(expected, True, True), (expected, False, False)]


def test_an_exception_in_a_handler_is_a_failed_result(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(root: Any) -> dict[str, Any]:
        raise KeyError("boom")

    monkeypatch.setattr(tradeops.modrun.host_info, "inspect_host", broken)
    result = handle(
        {"api": API_VERSION, "module": "host_info", "params": host_info_params(layout.root)}
    )
    assert result["failed"] is True
    assert result["msg"] == "host_info: unexpected KeyError: 'boom'"
    assert result["exception"].startswith("Traceback (most recent call last):")
    assert "in broken" in result["exception"]
    assert "KeyError: 'boom'" in result["exception"]


def test_an_exception_in_the_release_service_is_a_failed_result(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(request: Any, check_mode: bool = False) -> Any:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(tradeops.modrun.release, "run_release", broken)
    params = {"root": str(layout.root), "state": "pruned"}
    result = handle({"api": API_VERSION, "module": "release", "params": params})
    assert result["failed"] is True
    assert "unexpected ZeroDivisionError" in result["msg"]
    assert "ZeroDivisionError" in result["exception"]


def test_a_missing_required_param_is_refused_before_the_handler_runs() -> None:
    # The action plugin validates, but a bad caller may not.
    result = handle({"api": API_VERSION, "module": "deploy_lock", "params": {}})
    assert result == {
        "failed": True,
        "msg": "deploy_lock: missing required parameter(s) root, run_id, owner",
    }


@pytest.mark.parametrize("name", [["host_info"], {"a": 1}])
def test_an_unhashable_module_name_fails_cleanly(name: Any) -> None:
    assert handle({"api": API_VERSION, "module": name, "params": {}})["failed"] is True


# Through a real process, as the action plugin runs it.


def test_process_unknown_module() -> None:
    answer = modrun_answer({"api": API_VERSION, "module": "nope", "params": {}})
    assert answer == {"failed": True, "msg": "tradeops.modrun has no module 'nope'"}


def test_process_params_not_a_mapping() -> None:
    answer = modrun_answer({"api": API_VERSION, "module": "host_info", "params": ["root"]})
    assert answer == {"failed": True, "msg": "tradeops.modrun: params must be a mapping"}


@pytest.mark.parametrize("stdin", ["", "{", "{'module': 'x'}", "not json", b"\xff\xfe{"])
def test_process_bad_json_is_a_failed_answer_and_exit_0(stdin: str | bytes) -> None:
    proc = run_modrun(stdin)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["failed"] is True
    assert answer["msg"].startswith("tradeops.modrun: bad request: ")
    assert proc.stdout.endswith(b"}\n")


@pytest.mark.parametrize("request_json", ["[]", '"host_info"', "42", "null"])
def test_process_a_request_that_is_not_an_object_fails(request_json: str) -> None:
    proc = run_modrun(request_json)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["failed"] is True


def test_process_host_info(layout: Layout) -> None:
    answer = modrun_answer(
        {"api": API_VERSION, "module": "host_info", "params": host_info_params(layout.root)}
    )
    assert answer["changed"] is False
    assert answer["layout_ok"] is True
    assert answer["root"] == str(layout.root)
    assert answer["missing_dirs"] == []


def test_process_host_info_failure(layout: Layout) -> None:
    (layout.root / "run").rmdir()
    params = host_info_params(layout.root, require_layout=True)
    answer = modrun_answer({"api": API_VERSION, "module": "host_info", "params": params})
    assert answer["failed"] is True
    assert answer["msg"] == f"tradeops layout incomplete under {layout.root}: missing run"


def test_process_handler_exception_is_answered(layout: Layout) -> None:
    # A keep of the wrong type (the action plugin would have refused it) makes the
    # release service raise inside the child process.
    params = {"root": str(layout.root), "state": "pruned", "keep": "many"}
    answer = modrun_answer({"api": API_VERSION, "module": "release", "params": params})
    assert answer["failed"] is True
    assert answer["msg"].startswith("release: unexpected TypeError"), answer
    assert "Traceback" in answer["exception"]


def test_process_release_with_src_points_to_the_action_plugin(tmp_path: Path) -> None:
    params = {"root": str(tmp_path), "state": "staged", "release_id": "r1", "src": "a.tgz"}
    answer = modrun_answer({"api": API_VERSION, "module": "release", "params": params})
    assert answer["failed"] is True
    assert "action plugin" in answer["msg"]
