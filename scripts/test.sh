#!/usr/bin/env bash
# Runs the whole test suite with cargo-nextest (cargo test when nextest is missing).
# The crates have no doc tests (examples live in tests/), so nextest's summary is the last word.
set -euo pipefail
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
