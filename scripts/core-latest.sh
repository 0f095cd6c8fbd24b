#!/usr/bin/env bash
# The newest ansible-core (requirements/core-latest.txt) on the newest Python here.
# `make test` runs everything on ansible-core 2.19 (.venv, Python 3.11), the
# oldest core supported; this runs the unit tests, the fleet deploy tests and
# ansible-test sanity again on the newest, in .venv-core, so that "2.19 or newer"
# is checked, not assumed. Cores newer than 2.19 need Python 3.12 or later: on a
# developer's machine without one (Debian 12 ships 3.11) it says so and skips;
# under CI=true it fails instead, like the tests that need root or sshd.
set -euo pipefail
cd "$(dirname "$0")/.."
quiet() { "$@" 2> >(grep -v "^WARNING: Location" >&2); }
venv=.venv-core

find_python() {
    local version candidate
    local -a candidates
    shopt -s nullglob
    for version in 3.13 3.12; do
        candidates=("python$version")
        if command -v pyenv >/dev/null 2>&1; then
            candidates+=("$(pyenv root)/versions/$version"*/bin/"python$version")
        fi
        candidates+=("$HOME/.pyenv/versions/$version"*/bin/"python$version")
        for candidate in "${candidates[@]}"; do
            # A pyenv shim exists even when the version is not selected: try it.
            if "$candidate" -c 'import venv, ensurepip' >/dev/null 2>&1; then
                command -v "$candidate"
                return 0
            fi
        done
    done
    return 1
}

if [[ ! -x $venv/bin/python ]]; then
    if ! python=$(find_python); then
        why="no Python 3.12 or 3.13 on this machine, so no ansible-core newer than 2.19 runs here"
        if [[ ${CI:-} == true ]]; then
            echo "core-latest: FAILED, $why (CI=true)" >&2
            exit 1
        fi
        echo "core-latest: SKIPPED, $why; everything else ran on 2.19" >&2
        exit 0
    fi
    echo "core-latest: creating $venv with $("$python" --version)"
    "$python" -m venv "$venv"
fi
if [[ ! -e $venv/.installed || requirements/core-latest.txt -nt $venv/.installed \
      || pyproject.toml -nt $venv/.installed ]]; then
    quiet "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r requirements/core-latest.txt
    quiet "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
        --no-build-isolation -e .
    touch "$venv/.installed"
fi
core=$("$venv/bin/python" -c 'import ansible; print(ansible.__version__)')
py=$("$venv/bin/python" -c 'import platform; print(platform.python_version())')
echo "core-latest: ansible-core $core on Python $py"

scripts/wheelhouse.sh >/dev/null
# The controller-killed test (6 SIGKILLs of an 8-host cutover, about 3 minutes)
# runs once, on 2.19: what it checks is the deploy's own lock and fence, which
# the other fleet tests here already exercise on the newest core. So do the
# volume tests (fuzz and property tests of our own parsers, about a minute).
# The unit tests on two workers (pytest-xdist), as make unit does; the fleet tests serially.
"$venv/bin/python" -m pytest -q -p no:cacheprovider -m "not volume" -n 2 \
    tests/unit "$@"
# Sanity only reads files: it runs beside the fleet tests, its output shown after them.
sanity_log=$(mktemp)
trap 'rm -f "$sanity_log"' EXIT
VENV=$venv scripts/sanity.sh >"$sanity_log" 2>&1 &
sanity_pid=$!
fleet_status=0
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/integration/deploy \
    tests/integration/test_module_paths.py \
    --ignore=tests/integration/deploy/test_controller_killed.py "$@" || fleet_status=$?
sanity_status=0
wait "$sanity_pid" || sanity_status=$?
cat "$sanity_log"
if ((fleet_status || sanity_status)); then
    echo "core-latest: FAILED on ansible-core $core (fleet deploy tests: exit $fleet_status," \
        "sanity: exit $sanity_status)" >&2
    exit 1
fi
echo "core-latest: ansible-core $core on Python $py: unit, fleet deploy and sanity passed"
