"""The versioned controller-to-host API: one request in, one module result out.

A request is ``{"api": N, "module": name, "params": {...}, "check_mode": bool,
"diff": bool}``. Both module paths build it: the module files under AnsiballZ
(``plugins/module_utils/tradeops_lib.py``) and the action plugins' fast path
(``python -m tradeops.modrun``). The rules, written down in docs/host-contract.md:

* ``api`` is required. A host accepts ``OLDEST_API_VERSION..API_VERSION``; any
  other version is refused before a handler runs, naming both sides' versions.
* ``params`` are checked against the handler's request type (a dataclass): a
  key the type does not declare is refused, never dropped, with the key and both
  versions named. A required field that is missing is refused the same way.
* Every answer carries ``host_library`` (the library version and the API it
  speaks), so the controller can compare what answered with what it needs.
* Any change to a request type bumps ``API_VERSION``; the collection's
  ``plugins/module_utils/host_api.py`` pins the same version and library, and
  ``tests/unit/modrun/test_api.py`` fails when the two sides disagree.
"""

from __future__ import annotations

import dataclasses
import importlib
import traceback
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from tradeops import __version__

API_VERSION = 4
OLDEST_API_VERSION = 2
# Imported on demand: a call pays only for its own module's imports.
HANDLERS = frozenset({"cutover", "deploy_lock", "host_info", "killswitch", "release", "strategy"})
UPGRADE_HINT = (
    "run the tradeops.algo.host role so that the host has the library the collection needs"
)

T = TypeVar("T")


class RequestRefused(ValueError):
    """The request does not fit this host's API; nothing was run."""


class Handler(Protocol):
    """A module's handler: its request type and its ``run``."""

    PARAMS: type[Any]

    def run(self, params: Any, check_mode: bool, diff: bool) -> dict[str, Any]:
        """Run the module; return its result."""


def host_library() -> dict[str, Any]:
    """What answers: the library version and the host API range it speaks."""
    return {"version": __version__, "api": API_VERSION, "oldest_api": OLDEST_API_VERSION}


def _speaks() -> str:
    span = (
        f"{API_VERSION}"
        if OLDEST_API_VERSION == API_VERSION
        else f"{OLDEST_API_VERSION}..{API_VERSION}"
    )
    return f"this host's library tradeops {__version__} speaks host API {span}"


def check_version(api: object) -> int:
    """Return the request's API version, or raise ``RequestRefused``."""
    if api is None:
        raise RequestRefused(
            "tradeops.modrun: the request carries no host API version (the controller's "
            f"collection predates the versioned host API); {_speaks()}: update the collection"
        )
    if not isinstance(api, int) or isinstance(api, bool):
        raise RequestRefused(
            f"tradeops.modrun: the host API version must be an integer, got {api!r}"
        )
    if api > API_VERSION:
        raise RequestRefused(
            f"tradeops.modrun: the controller speaks host API {api}, {_speaks()}: {UPGRADE_HINT}"
        )
    if api < OLDEST_API_VERSION:
        raise RequestRefused(
            f"tradeops.modrun: the controller speaks host API {api}, {_speaks()}: "
            "update the collection on the controller"
        )
    return api


def field_names(kind: type[Any]) -> frozenset[str]:
    """The parameters a request type declares."""
    return frozenset(f.name for f in dataclasses.fields(kind))


def parse_params(kind: type[T], params: Mapping[str, Any], module: str, api: int) -> T:
    """Build ``kind`` from ``params``; refuse keys it does not declare and missing required ones."""
    declared = dataclasses.fields(kind)  # type: ignore[arg-type]
    known = {f.name for f in declared}
    unknown = sorted(set(params) - known)
    if unknown:
        raise RequestRefused(
            f"{module}: unknown parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}: the controller speaks host API {api}, "
            f"{_speaks()} and does not know "
            f"{'them' if len(unknown) > 1 else 'it'}; {UPGRADE_HINT}"
        )
    missing = [
        f.name
        for f in declared
        if f.name not in params
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise RequestRefused(f"{module}: missing required parameter(s) {', '.join(missing)}")
    return kind(**params)


def load_handler(name: object) -> Handler:
    """The handler module of ``name``, or raise ``RequestRefused``."""
    if not isinstance(name, str) or name not in HANDLERS:
        raise RequestRefused(f"tradeops.modrun has no module {name!r}")
    handler: Handler = importlib.import_module(f"tradeops.modrun.{name}")
    return handler


def handle(request: Mapping[str, Any]) -> dict[str, Any]:
    """Run the module that ``request`` names; return its result, never raise."""
    name = request.get("module")
    try:
        api = check_version(request.get("api"))
        handler = load_handler(name)
        raw = request.get("params")
        if not isinstance(raw, Mapping):
            raise RequestRefused("tradeops.modrun: params must be a mapping")
        params = parse_params(handler.PARAMS, raw, str(name), api)
    except RequestRefused as exc:
        return {"failed": True, "msg": str(exc), "host_library": host_library()}
    try:
        result = handler.run(params, bool(request.get("check_mode")), bool(request.get("diff")))
    except Exception as exc:  # a module must answer, not crash
        result = {
            "failed": True,
            "msg": f"{name}: unexpected {type(exc).__name__}: {exc}",
            "exception": traceback.format_exc(),
        }
    result["host_library"] = host_library()
    return result
