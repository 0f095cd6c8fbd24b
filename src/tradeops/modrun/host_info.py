"""The ``host_info`` module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tradeops.process.running import read_running
from tradeops.releases.config_files import ConfigFileError, config_differs, parse_config_files
from tradeops.releases.hoststate import read_host_state
from tradeops.releases.layout import Layout, inspect_host


@dataclass(frozen=True)
class HostInfoParams:
    """The module's parameters."""

    root: str
    require_layout: bool = False
    min_free_bytes: int = 0
    status_url: str | None = None
    verify_current: bool = False  # re-hash the active release (release_state.altered)
    release_id: str | None = None  # with config_files: the release whose config is compared
    config_files: list[dict[str, Any]] | None = None  # path and sha256 of each file


PARAMS = HostInfoParams


def run(params: HostInfoParams, check_mode: bool, diff: bool) -> dict[str, Any]:
    """Describe the host; fail the preflight checks that were asked for."""
    del check_mode, diff  # reads only
    try:
        info: dict[str, Any] = inspect_host(params.root)
    except (ValueError, RuntimeError) as exc:
        return {"failed": True, "msg": str(exc)}
    layout = Layout.at(params.root)
    info["release_state"] = (
        read_host_state(layout, verify_current=params.verify_current) if info["exists"] else None
    )
    if params.config_files and params.release_id:
        try:
            wanted = parse_config_files(params.config_files, params.release_id)
        except ConfigFileError as exc:
            return {"failed": True, "msg": str(exc), **info}
        info["config_differs"] = config_differs(layout, wanted) if info["exists"] else None
    if params.status_url:
        info["running"] = read_running(params.status_url).as_dict()
    if not info["exists"] and (params.require_layout or params.min_free_bytes):
        return {"failed": True, "msg": f"{info['root']} does not exist", **info}
    if params.require_layout and not info["layout_ok"]:
        missing = ", ".join(info["missing_dirs"])
        return {
            "failed": True,
            "msg": f"tradeops layout incomplete under {info['root']}: missing {missing}",
            **info,
        }
    need = params.min_free_bytes or 0
    free = info.get("free_bytes") or 0
    if need and free < need:
        return {
            "failed": True,
            "msg": f"only {free >> 20} MiB free under {info['root']}, {need >> 20} MiB needed",
            **info,
        }
    return {"changed": False, **info}
