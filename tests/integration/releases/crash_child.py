"""Child process of the crash-consistency test: stage one release, then activate it.

Usage: ``python crash_child.py <tradeops_root> <artifact> <release_id>``. With
``TRADEOPS_CRASH_AT=N`` the process SIGKILLs itself at the N-th crash point;
with ``TRADEOPS_CRASH_AT=0`` it runs to the end and prints, as JSON, how many
crash points it passed and their labels.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tradeops.releases.activation import activate
from tradeops.releases.fsutil import crashpoint_count, crashpoint_labels
from tradeops.releases.layout import Layout
from tradeops.releases.staging import stage


def main(argv: list[str]) -> int:
    root, artifact, release_id = argv
    layout = Layout.at(root)
    stage(layout, Path(artifact), release_id)
    activate(layout, release_id)
    print(json.dumps({"count": crashpoint_count(), "labels": crashpoint_labels()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
