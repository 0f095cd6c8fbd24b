#!/usr/bin/env bash
# Build build/wheelhouse: the tradeops wheel and every runtime dependency, so that
# trading hosts install offline (pip --no-index).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/wheelhouse
mkdir -p "$out"
rm -f "$out"/tradeops-*.whl
.venv/bin/python -m pip wheel --quiet --disable-pip-version-check --no-build-isolation \
    --wheel-dir "$out" '.[postgres]' 2> >(grep -v "^WARNING: Location" >&2)
wheels=("$out"/*.whl)
tradeops_wheel=("$out"/tradeops-*.whl)
echo "wheelhouse: ${#wheels[@]} wheels in $out ($(basename "${tradeops_wheel[0]}"))"
