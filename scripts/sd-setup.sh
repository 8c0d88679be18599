#!/usr/bin/env bash
# Signs and submits every *.json record file of a directory (name order) to the running `sd`,
# as the original's .scripts/sd_setup.sh does. `--reset` applies to the first file only: it starts a
# new chain, so stale records from an earlier setup cannot break the fingerprint pinning.
# usage: scripts/sd-setup.sh DIR [--reset]    (env: BIN_DIR, SIGNER = the signing operator's role dir)
set -euo pipefail
dir=${1:?usage: sd-setup.sh DIR [--reset]}
reset=${2:-}
BIN_DIR=${BIN_DIR:-target/release}
SIGNER=${SIGNER:-settings/dev/roles/hd-1}

shopt -s nullglob
files=("$dir"/*.json)
if [ ${#files[@]} -eq 0 ]; then
  echo "sd-setup: no *.json record files in $dir" >&2
  exit 1
fi
for file in "${files[@]}"; do
  echo "Importing $file..."
  HYPER_SETTINGS="$SIGNER" "$BIN_DIR/hyper" sd submit-records $reset "$file"
  reset=""
done
