#!/usr/bin/env bash
# ansible-test sanity, offline, from a path that ends in ansible_collections/tradeops/algo.
# VENV (default .venv) names the virtualenv whose ansible-test and Python run it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
venv=${VENV:-.venv}
export PATH="$repo/$venv/bin:$PATH"
scripts/collection-path.sh >/dev/null
root="$repo/.collections/ansible_collections/tradeops/algo"

# ansible-test bootstraps pip in its venvs with a downloaded get-pip.py; put the
# offline stand-in where it looks, for the pip version this ansible-test wants.
pip_version=$("$venv/bin/python" - <<'PY'
import re, pathlib, ansible_test
src = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip='([0-9.]+)'", src.read_text()).group(1))
PY
)
cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
mkdir -p "$(dirname "$cache")"
cp scripts/get_pip_standin.py "$cache"

# ansible-test lists the files with git; untracked files would be ignored.
py=$("$venv/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
cd "$root"
ANSIBLE_TEST_CONTENT_ROOT="$root" "$repo/$venv/bin/ansible-test" sanity --local \
    --python "$py" --requirements --color no "$@"
