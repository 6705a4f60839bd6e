#!/usr/bin/env bash
# The browser test, run by .ci/run: builds the wasm (web/build.sh), trains a tiny model
# natively on the demo data (web/test/tiny.toml), writes native taskgate's predictions with
# logits and gates for web/test/sentences.jsonl, then drives the page in headless Chromium
# (web/test/browser_test.mjs): the page's logits must match native ones within 1e-3, 30
# training steps in the page must lower the loss and match native fine-tuning with the same
# engine (examples/finetune_session.rs) step by step, and the downloaded weights, loaded back
# through the page's file input, must predict what the trained page did. A second model with a
# generation task (web/test/tiny-generation.toml, beam search) must generate in the page the
# same text and beams, with the same scores, as natively. Then it checks that the test itself
# fails fast on a page error. Outputs (the screenshot
# page-after-training.png among them) go to target/browser-test/.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=target/browser-test
rm -rf "$out"
mkdir -p "$out"

bash web/build.sh
cargo build --quiet --bin taskgate
taskgate=target/debug/taskgate
"$taskgate" train web/test/tiny.toml --out "$out/run"
"$taskgate" export-data web/test/tiny.toml --split train --per-task 48 --output "$out/demo.jsonl"
"$taskgate" predict "$out/run" --input web/test/sentences.jsonl --gates --logits \
    --output "$out/native.jsonl"
# Native fine-tuning with the page's engine and the settings the test gives the page.
settings='{"steps": 30, "lr": 0.003, "batch_size": 16, "warmup": 0.1, "seed": 1}'
cargo run --quiet --example finetune_session -- "$out/run/best" "$out/demo.jsonl" "$settings" \
    >"$out/native-training.jsonl"

(cd web/test && npm ci --no-audit --no-fund --loglevel=error)
args=(--model "$out/run/best" --data "$out/demo.jsonl" --expected "$out/native.jsonl")
# Its own watchdog stops it after --timeout seconds; `timeout` is the backstop.
timeout 1000 node web/test/browser_test.mjs "${args[@]}" \
    --native-training "$out/native-training.jsonl" \
    --screenshot "$out/page-after-training.png" --steps 30 --timeout 900

# Generation in the page: text and beams as native predict writes them (page-generation.png).
"$taskgate" init web/test/tiny-generation.toml --out "$out/generation"
"$taskgate" predict "$out/generation" --input web/test/nouns.jsonl --gates --logits \
    --output "$out/native-generation.jsonl"
timeout 600 node web/test/browser_test.mjs --model "$out/generation" --data "$out/demo.jsonl" \
    --expected "$out/native-generation.jsonl" --screenshot "$out/page-generation.png" \
    --predict-only --timeout 500

# The test must fail, and fast, when the page throws.
if timeout 300 node web/test/browser_test.mjs "${args[@]}" --screenshot "$out/self-check.png" \
    --self-check-page-error --timeout 240 >"$out/self-check.log" 2>&1; then
    echo "browser test: the page-error self-check passed, but it must fail" >&2
    cat "$out/self-check.log" >&2
    exit 1
fi
if ! grep -q boom "$out/self-check.log"; then
    echo "browser test: the page-error self-check failed for another reason:" >&2
    cat "$out/self-check.log" >&2
    exit 1
fi
echo "browser test: a page error fails the test (self-check ok)"
echo "browser test: screenshot at $out/page-after-training.png"
