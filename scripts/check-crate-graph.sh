#!/usr/bin/env bash
# Checks the crate graph ARCHITECTURE.md states ("Crates and dependency arrows") with `cargo tree`:
# each crate's direct dependencies on our crates stay within what its layer allows, the sans-IO
# crates pull in no async runtime, sd and hyper never link the engine, and nothing but tests links
# the test kit. Fails naming the edge.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
direct() { # our crates $1 depends on directly (normal dependencies only)
  cargo tree -q -p "$1" -e normal --depth 1 --prefix none --format '{p}' \
    | awk 'NR > 1 && $1 ~ /^tandem-/ { print $1 }' | sort -u
}
all_deps() { # every package in $1's normal dependency tree
  cargo tree -q -p "$1" -e normal --prefix none --format '{p}' | awk '{ print $1 }' | sort -u
}
allow() { # crate, allowed direct dependencies of ours
  local crate=$1; shift
  local dep deps
  deps=$(direct "$crate") || exit 1
  for dep in $deps; do
    if [[ " $* " != *" $dep "* ]]; then
      echo "crate graph: $crate must not depend on $dep (allowed: ${*:-none})" >&2
      fail=1
    fi
  done
}
forbid() { # crate, packages that must not appear anywhere in its normal tree
  local crate=$1; shift
  local tree
  tree=$(all_deps "$crate") || exit 1
  local bad
  for bad in "$@"; do
    if grep -qx "$bad" <<<"$tree"; then
      echo "crate graph: $crate must not pull in $bad" >&2
      fail=1
    fi
  done
}

allow tandem-types
allow tandem-proxy-header
allow tandem-serving tandem-types tandem-proxy-header
allow tandem-settings tandem-types
allow tandem-directory tandem-types
allow tandem-datastore tandem-settings tandem-types
allow tandem-contracts tandem-types tandem-directory
allow tandem-net tandem-serving tandem-settings tandem-directory tandem-types
allow tandem-hyper tandem-contracts tandem-net tandem-directory tandem-settings tandem-serving tandem-types tandem-proto
allow tandem-sd tandem-contracts tandem-net tandem-datastore tandem-directory tandem-settings tandem-serving tandem-types
allow tandem-proxy tandem-contracts tandem-engine tandem-net tandem-datastore tandem-directory tandem-settings tandem-proxy-header \
  tandem-serving tandem-types tandem-proto
allow tandem-engine tandem-types tandem-proxy-header
allow tandem-bench tandem-engine tandem-net tandem-settings tandem-proxy tandem-hyper tandem-types tandem-proto

forbid tandem-types tokio
forbid tandem-proxy-header tokio monoio
forbid tandem-settings tokio
forbid tandem-directory tokio
forbid tandem-contracts tokio monoio
forbid tandem-sd tandem-engine monoio
forbid tandem-hyper tandem-engine monoio
forbid tandem-engine tokio tonic prost
# Test support is a dev-dependency only: no production crate, binary or bench links tandem-testkit.
for crate in tandem-types tandem-proxy-header tandem-serving tandem-settings tandem-directory tandem-contracts tandem-datastore tandem-net \
  tandem-hyper tandem-sd tandem-proxy tandem-engine tandem tandem-bench; do
  forbid "$crate" tandem-testkit
done

if [[ $fail -ne 0 ]]; then exit 1; fi
echo "crate graph: as ARCHITECTURE.md states"
