#!/usr/bin/env bash
# Make the collection resolvable by FQCN from inside the repo:
# .collections/ansible_collections/tradeops/algo -> the repo root.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .collections/ansible_collections/tradeops
link=.collections/ansible_collections/tradeops/algo
if [[ "$(readlink "$link" 2>/dev/null)" != "../../.." ]]; then
    rm -f "$link"
    ln -s ../../.. "$link"
fi
echo "collection: tradeops.algo -> $(cd "$link" && pwd -P)"
