#!/usr/bin/env bash
# The demo of the seed scenario on the embedded defaults (dev roles, file datastores, no Redis).
# What exists so far: the signed service directory. The script starts `sd` (role sd-1), signs and
# loads the dev directory as hd-1 (the sd-admin), reads it back, and stops everything it started.
# usage: BIN_DIR=target/release scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN_DIR=${BIN_DIR:-target/release}
LOG_DIR=$(mktemp -d -t tandem-demo.XXXXXX)
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# Waits until a log file says a server is listening (bounded: 30 s).
wait_for() {
  local log=$1 pattern=$2
  for _ in $(seq 1 300); do
    grep -q "$pattern" "$log" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo: timed out waiting for '$pattern' in $log:" >&2
  cat "$log" >&2
  return 1
}

echo "== starting sd (settings/dev/roles/sd-1, embedded file datastore)"
SD_SETTINGS=settings/dev/roles/sd-1 "$BIN_DIR/sd" run >"$LOG_DIR/sd.log" 2>&1 &
pids+=($!)
wait_for "$LOG_DIR/sd.log" "sd listening"

echo "== loading the dev directory, signed by hd-1 (sd-admin)"
BIN_DIR=$BIN_DIR scripts/sd-setup.sh settings/dev/directory --reset 2>/dev/null
BIN_DIR=$BIN_DIR scripts/sd-setup.sh settings/dev/directory/default 2>/dev/null

echo "== the signed directory, read back by hd-2"
HYPER_SETTINGS=settings/dev/roles/hd-2 "$BIN_DIR/hyper" sd get-entries 2>/dev/null | python3 -c '
import json, sys
entries = json.load(sys.stdin)
print(f"{len(entries)} operators")
for e in entries:
    services = ", ".join(s["name"] for s in e["services"]) or "-"
    channels = ", ".join(c["type"] for c in e["channels"]) or "-"
    groups = ", ".join(e["groups"]) or "-"
    name = e["name"]
    print(f"  {name:<20} groups: {groups:<20} channels: {channels:<24} services: {services}")
'
echo "== hd-2's entry"
HYPER_SETTINGS=settings/dev/roles/hd-2 "$BIN_DIR/hyper" sd get-entries --name hd-2 2>/dev/null | head -40
echo "== done (logs in $LOG_DIR)"
