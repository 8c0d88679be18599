#!/usr/bin/env bash
# Runs the whole test suite (nextest when installed, cargo test otherwise).
set -euo pipefail
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
# Doc tests (nextest does not run them).
cargo test --workspace --doc
