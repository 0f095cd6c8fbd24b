#!/usr/bin/env bash
# Build build/wheelhouse, so that trading hosts install offline (pip --no-index):
#   tradeops-<v>.whl          the host library and the strategy client, with every
#                             runtime dependency;
#   tradeops_staging-<v>.whl  the staging and test extras (the simulator, the test
#                             fleet), installed only where asked (the simulator role).
# The reference strategy is in neither: it ships in its releases.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/wheelhouse
mkdir -p "$out"
rm -f "$out"/tradeops-*.whl "$out"/tradeops_staging-*.whl
quiet() { "$@" 2> >(grep -v "^WARNING: Location" >&2); }
# setuptools builds in-tree through build/lib: a stale copy of a package that is
# no longer in the wheel (the extras) would be packed again.
rm -rf build/lib build/bdist.*
quiet .venv/bin/python -m pip wheel --quiet --disable-pip-version-check --no-build-isolation \
    --wheel-dir "$out" '.[postgres]'

version=$(PYTHONPATH=src .venv/bin/python -c 'import tradeops; print(tradeops.__version__)')
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/src/tradeops"
cp -r src/tradeops/sim src/tradeops/testing "$stage/src/tradeops/"
find "$stage" -name __pycache__ -prune -exec rm -rf {} +
cat > "$stage/pyproject.toml" <<EOF
[build-system]
requires = ["setuptools>=68", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "tradeops-staging"
version = "$version"
description = "Staging and test extras of tradeops: the FIX exchange simulator and the test fleet."
requires-python = ">=3.11"
license = "GPL-3.0-or-later"
dependencies = ["tradeops==$version"]

[tool.setuptools]
packages = ["tradeops.sim", "tradeops.testing"]
package-dir = {"" = "src"}

[tool.setuptools.package-data]
"tradeops.sim" = ["*.xml", "*.yml"]
EOF
quiet .venv/bin/python -m pip wheel --quiet --disable-pip-version-check --no-build-isolation \
    --no-deps --wheel-dir "$out" "$stage"

wheels=("$out"/*.whl)
ours=("$out"/tradeops-*.whl "$out"/tradeops_staging-*.whl)
echo "wheelhouse: ${#wheels[@]} wheels in $out (${ours[*]##*/})"
