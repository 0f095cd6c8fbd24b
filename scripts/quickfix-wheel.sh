#!/usr/bin/env bash
# Install QuickFIX (the independent FIX engine of the conformance suite) into
# .venv, building its wheel once per machine. PyPI has only its sdist, whose
# default build takes about 5 minutes on 2 cores; this one takes about 1.3:
# -O1 without debug info, and the 55 sources compiled 2 at a time
# (scripts/build/sitecustomize.py). The wheel is cached in
# ${TRADEOPS_WHEEL_CACHE:-~/.cache/tradeops/wheels} and reused by every clone.
# Only `make conformance` (part of `make test`) needs it; `make demo` does not.
set -euo pipefail
cd "$(dirname "$0")/.."
quiet() { "$@" 2> >(grep -v "^WARNING: Location" >&2); }
venv=${VENV:-.venv}
python=$venv/bin/python
requirement=$(grep -E '^quickfix==' requirements/conformance.txt)
version=${requirement#quickfix==}
version=${version%% *}

if "$python" -c "import quickfix, importlib.metadata as m; \
assert m.version('quickfix') == '$version'" >/dev/null 2>&1; then
    exit 0
fi

tag=$("$python" -c 'import sys, sysconfig; v = f"cp{sys.version_info[0]}{sys.version_info[1]}"; \
print(f"{v}-{v}-" + sysconfig.get_platform().replace("-", "_").replace(".", "_"))')
cache=${TRADEOPS_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tradeops/wheels}
mkdir -p "$cache"
wheel=$cache/quickfix-$version-$tag.whl

if [[ ! -f $wheel ]]; then
    echo "quickfix-wheel: building QuickFIX $version for $tag once for this machine (about 1.5 min)..."
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    start=$SECONDS
    # The sdist is pinned by hash; the build uses the venv's own setuptools.
    quiet "$python" -m pip download --quiet --disable-pip-version-check --no-deps \
        --no-binary quickfix --require-hashes -r requirements/conformance.txt -d "$work/sdist"
    CXXFLAGS="-DNDEBUG -fwrapv -O1 -g0" \
        PARALLEL_COMPILE_JOBS=$(( $(nproc) > 1 ? $(nproc) : 2 )) \
        PYTHONPATH="$PWD/scripts/build${PYTHONPATH:+:$PYTHONPATH}" \
        quiet "$python" -m pip wheel --quiet --disable-pip-version-check --no-deps \
        --no-build-isolation --wheel-dir "$work/wheel" "$work"/sdist/quickfix-"$version".tar.gz \
        >"$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; exit 1; }
    mv "$work/wheel/$(basename "$wheel")" "$wheel"
    echo "quickfix-wheel: built $(basename "$wheel") in $(( SECONDS - start )) s, cached in $cache"
fi
quiet "$python" -m pip install --quiet --disable-pip-version-check --no-deps --no-index "$wheel"
echo "quickfix-wheel: QuickFIX $version installed in $venv from $wheel"
