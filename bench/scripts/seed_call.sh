#!/usr/bin/env bash
# The seed call (a local app calls hd-2._ping on hd-1's gateway) with curl and the dev certificates;
# exits 0 when it is answered with a result. Used as the legitimate probe of bench/scripts/hostile.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
certs=settings/dev/certs
out=$(curl -sS --max-time 30 --cert $certs/hd-1.crt --key $certs/hd-1.key --cacert $certs/root.crt \
  --resolve hd-1:5555:127.0.0.1 https://hd-1:5555/jsonrpc -H 'Content-Type: application/json' \
  --data '{"method":"hd-2._ping","id":"1","params":{},"jsonrpc":"2.0"}')
if grep -q '"result"' <<<"$out"; then echo served; else echo "$out" | head -c 300; exit 1; fi
