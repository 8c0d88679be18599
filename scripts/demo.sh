#!/usr/bin/env bash
# The seed scenario on the embedded defaults (dev roles, file datastores, no Redis):
# a local app calls `hd-2._ping` on hd-1's JSON-RPC gateway. hd-2 is reachable only through the public
# proxy, so hd-1 asks the proxy for a connection; the proxy pairs hd-1's and hd-2's connections in its
# io_uring engine, and the answer comes back over the spliced, end-to-end mTLS gRPC channel.
# The script starts every process, loads the signed directory, makes the call twice, prints the
# answer and the proxy's pair stats, and stops everything it started.
# usage: BIN_DIR=target/release scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN_DIR=${BIN_DIR:-target/release}
LOG_DIR=$(mktemp -d -t tandem-demo.XXXXXX)
CERTS=settings/dev/certs
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# start NAME LOG_PATTERN ENV=VALUE CMD... : runs CMD in the background and waits (30 s at most)
# until its log shows LOG_PATTERN.
start() {
  local name=$1 pattern=$2 env=$3
  shift 3
  env "$env" "$@" >"$LOG_DIR/$name.log" 2>&1 &
  pids+=($!)
  wait_for "$name" "$pattern"
}

wait_for() {
  local name=$1 pattern=$2
  for _ in $(seq 1 300); do
    grep -q "$pattern" "$LOG_DIR/$name.log" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo: $name did not log '$pattern' within 30 s:" >&2
  tail -20 "$LOG_DIR/$name.log" >&2
  exit 1
}

echo "== sd (settings/dev/roles/sd-1, embedded file datastore)"
start sd "sd listening" SD_SETTINGS=settings/dev/roles/sd-1 "$BIN_DIR/sd" run

echo "== loading the signed dev directory (hd-1 is the sd-admin)"
BIN_DIR=$BIN_DIR scripts/sd-setup.sh settings/dev/directory --reset 2>/dev/null
BIN_DIR=$BIN_DIR scripts/sd-setup.sh settings/dev/directory/default 2>/dev/null

echo "== public proxy, its Hyper node, hd-2, hd-1"
start proxy "public proxy started" PROXY_SETTINGS=settings/dev/roles/public-proxy-1 "$BIN_DIR/proxy" run public
start public-proxy-hyper-1 "hyper server running" HYPER_SETTINGS=settings/dev/roles/public-proxy-hyper-1 "$BIN_DIR/hyper" server run
start hd-2 "hyper server running" HYPER_SETTINGS=settings/dev/roles/hd-2 "$BIN_DIR/hyper" server run
# hd-2 cannot be dialed: it keeps a reverse stream to the proxy's Hyper node, which carries the
# proxy's `_connectionRequest` to it.
wait_for public-proxy-hyper-1 "reverse stream opened operator=hd-2"
start hd-1 "hyper server running" HYPER_SETTINGS=settings/dev/roles/hd-1 "$BIN_DIR/hyper" server run

echo "== a local app calls hd-2._ping on hd-1's gateway (https://hd-1:5555/jsonrpc), twice"
python3 - "$CERTS" <<'PY'
import json, socket, ssl, sys
certs = sys.argv[1]
ctx = ssl.create_default_context(cafile=f"{certs}/root.crt")
ctx.load_cert_chain(f"{certs}/hd-1.crt", f"{certs}/hd-1.key")
def call(body):
    raw = json.dumps(body).encode()
    with socket.create_connection(("127.0.0.1", 5555), timeout=30) as sock:
        with ctx.wrap_socket(sock, server_hostname="hd-1") as tls:
            tls.sendall(b"POST /jsonrpc HTTP/1.1\r\nHost: hd-1\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {len(raw)}\r\nConnection: close\r\n\r\n".encode() + raw)
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1])
for i in (1, 2):
    answer = call({"jsonrpc": "2.0", "method": "hd-2._ping", "id": i, "params": {"hello": "tandem"}})
    if "error" in answer:
        sys.exit(f"demo: the call failed: {answer['error']}")
    r = answer["result"]
    print(f"call {i}: id={answer['id']} version={r['version']} timestamp={r['timestamp']}")
    print(f"        serverInfo.name={r['serverInfo']['name']} groups={r['serverInfo']['groups']}")
    print(f"        params.hello={r['params']['hello']} params._client.name={r['params']['_client']['name']}")
print("answer of call 2 (directory entries shortened):")
info = r["serverInfo"]
r["serverInfo"] = {"name": info["name"], "groups": info["groups"], "channels": info["channels"],
                   "services": [s["name"] for s in info["services"]],
                   "records": f"<{len(info['records'])} signed records>"}
r["params"]["_client"]["entry"] = "<hd-1's directory entry>"
print(json.dumps(answer, indent=2))
PY

echo "== the proxy's engine: one pair carried both calls (proxy ctl stats, as the admin demo-app)"
"$BIN_DIR/proxy" ctl --addr localhost:6656 --operator demo-app --server-name public-proxy-1.ga stats

echo "== stopping (the proxy drains on SIGTERM)"
cleanup
pids=()
echo "== done (logs in $LOG_DIR)"
