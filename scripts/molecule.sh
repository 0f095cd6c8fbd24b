#!/usr/bin/env bash
# Run every molecule scenario under extensions/molecule (collection mode).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/collection-path.sh >/dev/null
export ANSIBLE_COLLECTIONS_PATH="$PWD/.collections"
export MOLECULE_NO_LOG=false
export ANSIBLE_FORCE_COLOR=0 PY_COLORS=0
exec .venv/bin/molecule test --all "$@"
