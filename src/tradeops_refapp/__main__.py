"""``python -m tradeops_refapp ACTION ...``: the strategy's own entry point, as a release runs it.

The release's launcher (``bin/refapp``) runs this with the host venv's Python
and the release's ``site/`` first on the path. The actions are those of
``tradeops refapp`` (``run``, ``check-config``, ``status``, ...).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tradeops_refapp.cli import register


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` as ``refapp ACTION ...`` and run the action."""
    parser = argparse.ArgumentParser(prog="refapp")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["refapp", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
