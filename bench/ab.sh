#!/usr/bin/env bash
# A/B timing of two taskgate binaries on the same training-step benchmark, alternating
# A, B, A, B, ... so that drift of the machine (thermal, other load) hits both alike:
#
#   bench/ab.sh OLD_BINARY NEW_BINARY [ROUNDS] [-- bench train flags]
#
# Each round runs `bench train` once per binary (default: --model minilm-l6 --batch 16
# --seq 64 --samples 5) and the script prints every round's median and min ms/step, then
# the median over rounds of each and the ratio B/A (below 1: B is faster).
# Build the old binary from a worktree, e.g.:
#   git worktree add /tmp/old REV && (cd /tmp/old && cargo build --release --bin taskgate)
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: bench/ab.sh OLD_BINARY NEW_BINARY [ROUNDS] [-- bench train flags]" >&2
    exit 2
fi
a=$1 b=$2
shift 2
rounds=3
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
    rounds=$1
    shift
fi
if [ $# -gt 0 ] && [ "$1" = "--" ]; then
    shift
fi
flags=("$@")
[ ${#flags[@]} -gt 0 ] || flags=(--model minilm-l6 --batch 16 --seq 64 --samples 5)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq 1 "$rounds"); do
    for side in a b; do
        bin=$a; [ $side = b ] && bin=$b
        if ! "$bin" bench train "${flags[@]}" --json "$out/$side-$r.json" >"$out/run.log" 2>&1; then
            echo "$bin bench train ${flags[*]} failed:" >&2
            cat "$out/run.log" >&2
            exit 1
        fi
    done
done
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows = {s: [json.load(open(f"{out}/{s}-{r}.json"))["results"][0] for r in range(1, rounds + 1)]
        for s in "ab"}
for r in range(rounds):
    a, b = rows["a"][r], rows["b"][r]
    print(f"round {r + 1}: A median {a['median_ms']:.0f} ms (min {a['min_ms']:.0f}), "
          f"B median {b['median_ms']:.0f} ms (min {b['min_ms']:.0f})")
for key in ("median_ms", "min_ms"):
    ma = statistics.median(x[key] for x in rows["a"])
    mb = statistics.median(x[key] for x in rows["b"])
    print(f"{key} over rounds: A {ma:.0f}, B {mb:.0f}, B/A {mb / ma:.3f}")
PY
