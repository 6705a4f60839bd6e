#!/usr/bin/env bash
# The README demo: fetches all-MiniLM-L6-v2 and the demo data (cached, checksummed), trains one
# gated multi-task model on five real tasks (one of them text generation) and prints its
# per-task test metrics.
#
#   demo/run.sh [--full] [RUN_DIR]      (default RUN_DIR: runs/demo or runs/demo-full)
#
# The default setting (demo/demo.toml: MiniLM's first 2 layers, 875 steps; 16 minutes on 2 CPU
# cores with lavapipe) is sized for a CPU adapter such as lavapipe; --full
# (demo/demo-full.toml: all 6 layers, longer) is for GPUs.
# An existing RUN_DIR is resumed if it was interrupted, and re-evaluated if it finished.
set -euo pipefail
cd "$(dirname "$0")/.."

config=demo/demo.toml
run=runs/demo
if [[ ${1:-} == --full ]]; then
    config=demo/demo-full.toml
    run=runs/demo-full
    shift
fi
run=${1:-$run}

python3 scripts/fetch_assets.py minilm
python3 scripts/demo_data.py
if [[ ! -x target/release/taskgate ]]; then
    echo "building taskgate (release; the first build compiles wgpu, naga, tokenizers and" \
        "about 160 other crates: about 2 minutes on 2 cores, more while they download)"
fi
cargo build --release
tg=target/release/taskgate

if [[ -f $run/last/state.json ]]; then
    done_steps=$(python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(int(s['step'] >= s['total_steps']))" "$run/last/state.json")
    if [[ $done_steps == 0 ]]; then
        "$tg" train --resume "$run"
    fi
else
    "$tg" train "$config" --out "$run"
fi
"$tg" eval "$run" --split test
echo "chart: $run/chart.svg   log: $run/log.jsonl   predict: $tg predict $run --input FILE.jsonl"
