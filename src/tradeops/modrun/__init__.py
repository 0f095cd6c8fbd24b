"""The logic of the collection's modules: validated parameters in, an Ansible result out.

Each ``run(params, check_mode, diff)`` returns the result dict a module
returns (``failed`` and ``msg`` on failure). Two callers share it, so a module
behaves the same whichever way it runs:

* the module files in ``plugins/modules`` (AnsiballZ, the standard path);
* ``python -m tradeops.modrun`` on the host, which the collection's action
  plugins call over the already-open SSH channel when pipelining is on. That
  skips AnsiballZ's start-up (about 0.13 s of CPU per call, measured), which is
  most of a deploy's cost on a fleet; see docs/deploy.md.
"""

from typing import Any, Protocol


class _Outcome(Protocol):
    changed: bool
    result: dict[str, Any]
    diff: Any


def module_result(outcome: _Outcome, diff: bool) -> dict[str, Any]:
    """A service's outcome as a module's result (the diff only when asked for)."""
    result = dict(outcome.result)
    result["changed"] = outcome.changed
    if diff and outcome.diff:
        result["diff"] = outcome.diff
    return result
