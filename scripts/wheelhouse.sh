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
# One build at a time: the test workers that run in parallel call this too.
exec 9>build/.wheelhouse.lock
flock 9
# Nothing to do when nothing it packs changed since the last build (the
# fingerprint of src/, pyproject.toml and this script).
fingerprint=$(find src pyproject.toml scripts/wheelhouse.sh -type f ! -path '*/__pycache__/*' \
    ! -path '*.egg-info/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum)
fingerprint=${fingerprint%% *}
if [[ -f $out/.fingerprint && $(<"$out/.fingerprint") == "$fingerprint" ]] \
    && compgen -G "$out/tradeops-*.whl" >/dev/null \
    && compgen -G "$out/tradeops_staging-*.whl" >/dev/null; then
    wheels=("$out"/*.whl)
    echo "wheelhouse: ${#wheels[@]} wheels in $out, up to date"
    exit 0
fi
rm -f "$out/.fingerprint" "$out"/tradeops-*.whl "$out"/tradeops_staging-*.whl
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

echo "$fingerprint" >"$out/.fingerprint"
wheels=("$out"/*.whl)
ours=("$out"/tradeops-*.whl "$out"/tradeops_staging-*.whl)
echo "wheelhouse: ${#wheels[@]} wheels in $out (${ours[*]##*/})"
