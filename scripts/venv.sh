#!/usr/bin/env bash
# Create .venv with the pinned development dependencies and tradeops (editable).
set -euo pipefail
cd "$(dirname "$0")/.."
# This machine's pip config names local mirrors that may be absent; their warnings are noise.
quiet() { "$@" 2> >(grep -v "^WARNING: Location" >&2); }

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [[ ! -x .venv/bin/python ]]; then
    echo "venv: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
quiet .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
quiet .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
quiet .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
touch .venv/.installed
echo "venv: ready (ansible-core $(.venv/bin/python -c 'import ansible; print(ansible.__version__)'))"
