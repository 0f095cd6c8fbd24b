#!/usr/bin/env bash
# make bench: every benchmark; each writes bench/results/<name>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
scripts/quickfix-wheel.sh  # the reference client of the FIX benchmarks
.venv/bin/python bench/bench_sim.py
.venv/bin/python bench/bench_fix_engines.py  # after bench_sim: it quotes its round trips
.venv/bin/python bench/bench_deploy.py
.venv/bin/python bench/bench_killswitch.py
ls -l bench/results/*.json
