#!/usr/bin/env bash
# The transfer experiment of README.md ("Transfer, freezing and Hugging Face export"):
# trains MiniLM's first 2 layers on three demo tasks (demo/transfer-source.toml), then trains
# the fourth, sentiment, on 50, 200 and all of its training examples, started from that
# model (--init-from) or from plain MiniLM, with the encoder frozen or trained; every target
# run has the same budget (demo/transfer-target.toml: 200 steps of 16) and is repeated for
# each seed of SEEDS (the [encoder] and [train] seeds: head initialisation, dropout masks and
# batch order; the 50 and 200 example subsets and the source model stay fixed). Prints a
# table of test metrics, mean and sample standard deviation over the seeds, with every run's
# own figures (also written to OUT/results.md).
#
#   [SEEDS="1 2 3"] demo/transfer.sh [OUT]     (default OUT: runs/transfer; finished runs are
#                                              reused)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/transfer}
seeds=${SEEDS:-1 2 3}
python3 scripts/fetch_assets.py minilm
python3 scripts/demo_data.py
cargo build --release
tg=target/release/taskgate
mkdir -p "$out"

# Seeded samples of the training file (the header kept), beside the configs that read them.
python3 - "$out" <<'PY'
import csv, random, sys
out = sys.argv[1]
with open("data/demo/sentiment/train.csv", newline="", encoding="utf-8") as f:
    header, *rows = list(csv.reader(f))   # records, not lines: a quoted text may hold a newline
for n in (50, 200):
    with open(f"{out}/sentiment-train-{n}.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(random.Random(n).sample(rows, n))
PY

finished() { [[ -f $1/last/state.json ]] && python3 -c "import json,sys; s=json.load(open(sys.argv[1])); sys.exit(s['step'] < s['total_steps'])" "$1/last/state.json"; }
train() { # RUN CONFIG [ARGS...]
    local run=$1
    shift
    if finished "$run"; then return; fi
    if [[ -f $run/run.toml ]]; then "$tg" train --resume "$run"; else "$tg" train "$@" --out "$run"; fi
}

train "$out/source" demo/transfer-source.toml
here=$(pwd)
for seed in $seeds; do
    for n in 50 200 all; do
        if [[ $n == all ]]; then data="$here/data/demo/sentiment/train.csv"; else data="$here/$out/sentiment-train-$n.csv"; fi
        for encoder in frozen trained; do
            config="$out/target-$n-$encoder-s$seed.toml"
            sed -e "s|^pretrained = .*|pretrained = \"$here/models/all-MiniLM-L6-v2\"|" \
                -e "s|^train = .*|train = \"$data\"|" \
                -e "s|^dev = \"\.\./|dev = \"$here/|" -e "s|^test = \"\.\./|test = \"$here/|" \
                -e "s|^seed = .*|seed = $seed|" \
                demo/transfer-target.toml > "$config"
            if [[ $encoder == frozen ]]; then echo 'freeze = ["encoder"]' >> "$config"; fi
            train "$out/minilm-$n-$encoder-s$seed" "$config"
            train "$out/transfer-$n-$encoder-s$seed" "$config" --init-from "$out/source"
        done
    done
done

python3 - "$out" "$tg" $seeds <<'PY'
import json, statistics, subprocess, sys
out, tg, seeds = sys.argv[1], sys.argv[2], sys.argv[3:]

def metrics(run):
    report = subprocess.run([tg, "eval", f"{out}/{run}", "--split", "test", "--json"],
                            check=True, capture_output=True, text=True).stdout
    m = json.loads(report)["metrics"]["sentiment"]
    return m["accuracy"], m["macro_f1"]

def cell(values):
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"

rows = [f"| examples | encoder | from plain MiniLM: accuracy | macro-F1 | from the 3-task model: accuracy | macro-F1 |",
        "|---|---|---|---|---|---|"]
runs = ["", "every run (test accuracy / macro-F1):", ""]
for n in ("50", "200", "all"):
    for encoder in ("frozen", "trained"):
        cells = []
        for start in ("minilm", "transfer"):
            per_seed = [metrics(f"{start}-{n}-{encoder}-s{seed}") for seed in seeds]
            cells += [cell([a for a, _ in per_seed]), cell([f for _, f in per_seed])]
            runs.append(f"- {start}-{n}-{encoder}: " + ", ".join(
                f"seed {seed} {a:.3f} / {f:.3f}" for seed, (a, f) in zip(seeds, per_seed)))
        rows.append(f"| {'6,824' if n == 'all' else n} | {encoder} | " + " | ".join(cells) + " |")
source = subprocess.run([tg, "eval", f"{out}/source", "--split", "test"], check=True,
                        capture_output=True, text=True).stdout.strip()
text = (f"seeds: {' '.join(seeds)} (mean ± sample standard deviation)\n\n" + "\n".join(rows)
        + "\n" + "\n".join(runs) + "\n\nsource model (test):\n" + source + "\n")
open(f"{out}/results.md", "w").write(text)
print(text)
PY
