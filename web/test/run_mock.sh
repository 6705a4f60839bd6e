#!/usr/bin/env bash
# Runs browser_test.mjs against the MOCK wasm module (web/test/mock/): checks the page, the
# server and the test itself without a Rust build. Usage: bash web/test/run_mock.sh [OUT.png]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[ -d "$here/node_modules/playwright-core" ] || (cd "$here" && npm ci --no-audit --no-fund)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
node "$here/mock/make_expected.mjs" "$here/sentences.jsonl" > "$tmp/expected.jsonl"
node "$here/browser_test.mjs" --pkg "$here/mock/pkg" --model "$here/mock/model" \
  --data "$here/mock/train.jsonl" --expected "$tmp/expected.jsonl" \
  --screenshot "${1:-$tmp/mock.png}" --steps 60 --timeout 120
