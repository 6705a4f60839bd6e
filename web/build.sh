#!/usr/bin/env bash
# Builds taskgate for the browser: the library and web/src (wasm-bindgen bindings) for
# wasm32-unknown-unknown in release mode, then wasm-bindgen (the CLI at exactly the version
# Cargo.lock pins, installed with `cargo install` when missing) writes web/pkg/:
# taskgate_web.js + taskgate_web_bg.wasm, which web/app.js imports.
# Usage: web/build.sh        (then serve the page: node web/serve.mjs --model DIR)
set -euo pipefail
cd "$(dirname "$0")/.."

target=wasm32-unknown-unknown
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
fi

# The wasm-bindgen version in Cargo.lock: the CLI must match it exactly.
version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ -z "$version" ]; then
    echo "web/build.sh: no wasm-bindgen in Cargo.lock" >&2
    exit 1
fi
if ! command -v wasm-bindgen >/dev/null || [ "$(wasm-bindgen --version | awk '{print $2}')" != "$version" ]; then
    echo "installing wasm-bindgen-cli $version (matches Cargo.lock; a few minutes)"
    cargo install wasm-bindgen-cli --version "$version"
fi

cargo build --release --target "$target" -p taskgate-web
wasm-bindgen --target web --no-typescript --out-dir web/pkg \
    "target/$target/release/taskgate_web.wasm"
ls -l web/pkg
