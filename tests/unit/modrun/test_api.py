"""The versioned host API: both sides agree, and a request that does not fit is refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import tradeops
from tests.collection_files import load
from tradeops.modrun import api

from .conftest import host_info_params, modrun_answer

host_api = load("plugins/module_utils/host_api.py")
specs = load("plugins/module_utils/specs.py")
SPECS = {
    "cutover": specs.CUTOVER,
    "deploy_lock": specs.DEPLOY_LOCK,
    "host_info": specs.HOST_INFO,
    "release": specs.RELEASE,
    "strategy": specs.STRATEGY,
    "killswitch": specs.KILLSWITCH,
}


def test_the_collection_pins_this_library_and_its_api() -> None:
    assert tradeops.__version__ == host_api.LIBRARY_VERSION
    assert host_api.HOST_API_VERSION == api.API_VERSION
    assert api.OLDEST_API_VERSION <= api.API_VERSION


def test_every_handler_has_a_spec_on_the_controller() -> None:
    assert set(SPECS) == api.HANDLERS


@pytest.mark.parametrize("module", sorted(api.HANDLERS))
def test_the_controller_spec_and_the_host_request_type_declare_the_same_params(
    module: str,
) -> None:
    handler = api.load_handler(module)
    assert dataclasses.is_dataclass(handler.PARAMS)
    assert set(SPECS[module]["argument_spec"]) == api.field_names(handler.PARAMS)


@pytest.mark.parametrize("module", sorted(api.HANDLERS))
def test_required_on_the_host_means_required_or_defaulted_on_the_controller(module: str) -> None:
    spec = SPECS[module]["argument_spec"]
    for field in dataclasses.fields(api.load_handler(module).PARAMS):
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            option = spec[field.name]
            assert option.get("required") or "default" in option, (module, field.name)


def request(**over: Any) -> dict[str, Any]:
    return {
        "api": api.API_VERSION,
        "module": "host_info",
        "params": {"root": "/nonexistent"},
        **over,
    }


SPEAKS = (
    f"speaks host API {api.API_VERSION}"
    if api.OLDEST_API_VERSION == api.API_VERSION
    else f"speaks host API {api.OLDEST_API_VERSION}..{api.API_VERSION}"
)


def refusal(req: dict[str, Any]) -> str:
    result = api.handle(req)
    assert result["failed"] is True
    assert result["host_library"] == api.host_library()
    assert set(result) == {"failed", "msg", "host_library"}, result
    return str(result["msg"])


def test_a_request_without_a_version_is_refused() -> None:
    req = request()
    del req["api"]
    msg = refusal(req)
    assert "carries no host API version" in msg
    assert f"tradeops {tradeops.__version__} {SPEAKS}" in msg


def test_a_newer_controller_is_refused_naming_both_versions() -> None:
    msg = refusal(request(api=api.API_VERSION + 1))
    assert msg.startswith(f"tradeops.modrun: the controller speaks host API {api.API_VERSION + 1}")
    assert SPEAKS in msg
    assert "tradeops.algo.host role" in msg


def test_an_older_controller_than_the_host_supports_is_refused() -> None:
    msg = refusal(request(api=api.OLDEST_API_VERSION - 1))
    assert f"speaks host API {api.OLDEST_API_VERSION - 1}" in msg
    assert "update the collection" in msg


@pytest.mark.parametrize("bad", ["2", 2.0, True, [2], {"v": 2}])
def test_a_version_that_is_not_an_integer_is_refused(bad: Any) -> None:
    assert "must be an integer" in refusal(request(api=bad))


def test_an_unknown_param_is_refused_not_dropped(tmp_path: Path) -> None:
    params = {**host_info_params(tmp_path), "slot": "green"}
    msg = refusal(request(params=params))
    assert msg == (
        f"host_info: unknown parameter 'slot': the controller speaks host API {api.API_VERSION}, "
        f"this host's library tradeops {tradeops.__version__} {SPEAKS} "
        f"and does not know it; {api.UPGRADE_HINT}"
    )


def test_several_unknown_params_are_all_named(tmp_path: Path) -> None:
    params = {**host_info_params(tmp_path), "zeta": 1, "alpha": 2}
    assert "unknown parameters 'alpha', 'zeta'" in refusal(request(params=params))


def test_a_refused_request_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[Any] = []
    handler = api.load_handler("deploy_lock")
    monkeypatch.setattr(handler, "run", lambda *a: ran.append(a) or {"changed": True})
    params = {"root": str(tmp_path), "run_id": "r", "owner": "o", "ttl_seconds": 5}
    refusal(request(module="deploy_lock", params=params))
    refusal(request(module="deploy_lock", params={}, api=99))
    assert ran == []


def test_every_answer_names_the_library(tmp_path: Path) -> None:
    ok = api.handle(request(params=host_info_params(tmp_path)))
    assert "failed" not in ok
    assert ok["host_library"] == {
        "version": tradeops.__version__,
        "api": api.API_VERSION,
        "oldest_api": api.OLDEST_API_VERSION,
    }


def test_a_real_process_refuses_an_unknown_param(tmp_path: Path) -> None:
    params = {**host_info_params(tmp_path), "slot": "green"}
    answer = modrun_answer(request(params=params))
    assert answer["failed"] is True
    assert "unknown parameter 'slot'" in answer["msg"]


# The controller's judgement of what answered (plugins/module_utils/host_api.py).

LIBRARY = {"version": tradeops.__version__, "api": api.API_VERSION, "oldest_api": 1}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"host_library": LIBRARY}, ""),
        (None, ""),
        ({"failed": True, "msg": "unreachable"}, ""),
        (
            {"host_library": {**LIBRARY, "version": "0.1.9"}},
            f"its library is tradeops 0.1.9 (host API {api.API_VERSION})",
        ),
        (
            {"host_library": {**LIBRARY, "api": api.API_VERSION + 1}},
            f"its library is tradeops {tradeops.__version__} (host API {api.API_VERSION + 1})",
        ),
        (
            {"library_version": "0.1.0", "layout_ok": True},
            "its library is tradeops 0.1.0 (host API none: it predates the versioned host API)",
        ),
    ],
)
def test_library_mismatch(answer: Any, expected: str) -> None:
    found = host_api.library_mismatch(answer)
    if not expected:
        assert found == ""
    else:
        assert found == f"{expected}; {host_api.NEEDED}"


def test_the_shared_links_default_is_the_same_on_both_sides() -> None:
    from tradeops.releases.staging import DEFAULT_SHARED_LINKS

    assert specs.RELEASE["argument_spec"]["shared_links"]["default"] == DEFAULT_SHARED_LINKS
    assert specs.CUTOVER["argument_spec"]["shared_links"]["default"] == DEFAULT_SHARED_LINKS
