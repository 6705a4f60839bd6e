#!/usr/bin/env bash
# The transfer experiment of README.md ("Transfer, freezing and Hugging Face export"):
# trains MiniLM's first 2 layers on three demo tasks (demo/transfer-source.toml), then trains
# the fourth, sentiment, on 50, 200 and all of its training examples, started from that
# model (--init-from) or from plain MiniLM, with the encoder frozen or trained; every target
# run has the same budget (demo/transfer-target.toml: 200 steps of 16). Prints a table of
# test metrics (also written to OUT/results.md).
#
#   demo/transfer.sh [OUT]     (default OUT: runs/transfer; finished runs are reused)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/transfer}
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
for n in 50 200 all; do
    if [[ $n == all ]]; then data="$here/data/demo/sentiment/train.csv"; else data="$here/$out/sentiment-train-$n.csv"; fi
    for encoder in frozen trained; do
        config="$out/target-$n-$encoder.toml"
        sed -e "s|^pretrained = .*|pretrained = \"$here/models/all-MiniLM-L6-v2\"|" \
            -e "s|^train = .*|train = \"$data\"|" \
            -e "s|^dev = \"\.\./|dev = \"$here/|" -e "s|^test = \"\.\./|test = \"$here/|" \
            demo/transfer-target.toml > "$config"
        if [[ $encoder == frozen ]]; then echo 'freeze = ["encoder"]' >> "$config"; fi
        train "$out/minilm-$n-$encoder" "$config"
        train "$out/transfer-$n-$encoder" "$config" --init-from "$out/source"
    done
done

python3 - "$out" "$tg" <<'PY'
import json, subprocess, sys
out, tg = sys.argv[1], sys.argv[2]
rows = ["| examples | encoder | from plain MiniLM: accuracy / macro-F1 | from the 3-task model: accuracy / macro-F1 |",
        "|---|---|---|---|"]
for n in ("50", "200", "all"):
    for encoder in ("frozen", "trained"):
        cells = []
        for start in ("minilm", "transfer"):
            report = subprocess.run([tg, "eval", f"{out}/{start}-{n}-{encoder}", "--split", "test", "--json"],
                                    check=True, capture_output=True, text=True).stdout
            m = json.loads(report)["metrics"]["sentiment"]
            cells.append(f"{m['accuracy']:.3f} / {m['macro_f1']:.3f}")
        rows.append(f"| {'6,824' if n == 'all' else n} | {encoder} | {cells[0]} | {cells[1]} |")
source = subprocess.run([tg, "eval", f"{out}/source", "--split", "test"], check=True,
                        capture_output=True, text=True).stdout.strip()
text = "\n".join(rows) + "\n\nsource model (test):\n" + source + "\n"
open(f"{out}/results.md", "w").write(text)
print(text)
PY
