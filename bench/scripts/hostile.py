#!/usr/bin/env python3
"""Hostile clients against a running listener, with a legitimate probe while the attack holds.

Opens connections from one or more loopback source addresses and holds them: `silent-tcp` sends
nothing, `idle-tls` completes a TLS handshake (with a client certificate when given) and then sends
nothing. While they are held, runs the probe command every `--probe-every` seconds and reports
whether it succeeded and how long it took; at the end, how many attacker connections the server
closed. Bounded: at most 5,000 connections and 600 s, loopback targets only.

examples (dev roles running, see README):
  # 1,100 idle TLS connections from one address to hd-1's gateway, then the seed call
  bench/scripts/hostile.py idle-tls --target 127.0.0.1:5555 --sources 127.0.0.2 --per-source 1100 \
      --cert settings/dev/certs/hd-2.crt --key settings/dev/certs/hd-2.key \
      --ca settings/dev/certs/root.crt --server-name hd-1 --probe 'bench/scripts/seed_call.sh'
  # 40 addresses x 30 each
  bench/scripts/hostile.py idle-tls ... --sources 127.0.0.10-49 --per-source 30 ...
"""
import argparse
import concurrent.futures
import ipaddress
import resource
import shlex
import socket
import ssl
import subprocess
import sys
import threading
import time

MAX_CONNECTIONS = 5000
MAX_HOLD = 600.0


def sources(spec):
    out = []
    for part in spec.split(","):
        if "-" in part:
            first, last = part.split("-")
            base = ipaddress.ip_address(first)
            stop = int(last) if "." not in last else int(str(ipaddress.ip_address(last)).split(".")[-1])
            start = int(str(base).split(".")[-1])
            prefix = ".".join(str(base).split(".")[:3])
            out += [f"{prefix}.{i}" for i in range(start, stop + 1)]
        else:
            out.append(part)
    for s in out:
        if not ipaddress.ip_address(s).is_loopback:
            sys.exit(f"hostile: source {s} is not a loopback address")
    return out


def open_one(kind, source, target, ctx, server_name, timeout):
    sock = socket.create_connection(target, timeout=timeout, source_address=(source, 0))
    if kind == "idle-tls":
        sock = ctx.wrap_socket(sock, server_hostname=server_name)
        # TLS 1.3: the server's handshake ends with our Finished; a read nudges it through.
        sock.settimeout(0.05)
        try:
            if sock.recv(1) == b"":
                raise ConnectionError("closed during the handshake")
        except (socket.timeout, ssl.SSLWantReadError):
            pass
    sock.setblocking(False)
    return sock


def still_open(sock):
    # Drain what the server sent (an HTTP/2 server's SETTINGS, TLS tickets): open means nothing more
    # to read yet, closed means EOF or an error.
    try:
        for _ in range(64):
            if sock.recv(65536) == b"":
                return False
        return True
    except (BlockingIOError, ssl.SSLWantReadError):
        return True
    except OSError:
        return False


def probe(cmd):
    started = time.monotonic()
    result = subprocess.run(cmd, shell=True, capture_output=True, timeout=60)
    took = time.monotonic() - started
    return result.returncode == 0, took, (result.stdout + result.stderr).decode(errors="replace").strip()[-200:]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("attack", choices=["silent-tcp", "idle-tls"])
    ap.add_argument("--target", required=True, help="HOST:PORT on loopback")
    ap.add_argument("--sources", default="127.0.0.2", help="addresses or a range: 127.0.0.10-49")
    ap.add_argument("--per-source", type=int, default=100)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--ca")
    ap.add_argument("--server-name", default="localhost")
    ap.add_argument("--alpn", default="http/1.1", help="ALPN protocols offered (h2 for gRPC ports)")
    ap.add_argument("--hold", type=float, default=15.0, help="seconds to hold after opening")
    ap.add_argument("--probe", help="shell command of the legitimate client (exit 0 = served)")
    ap.add_argument("--probe-every", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=64, help="connections opened at once (1 ..= 256)")
    args = ap.parse_args()

    host, port = args.target.rsplit(":", 1)
    target = (host, int(port))
    if not ipaddress.ip_address(socket.gethostbyname(host)).is_loopback:
        sys.exit("hostile: only loopback targets")
    srcs = sources(args.sources)
    total = len(srcs) * args.per_source
    if total > MAX_CONNECTIONS:
        sys.exit(f"hostile: {total} connections asked, at most {MAX_CONNECTIONS}")
    hold = min(args.hold, MAX_HOLD)
    args.concurrency = max(1, min(args.concurrency, 256))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    ctx = None
    if args.attack == "idle-tls":
        ctx = ssl.create_default_context(cafile=args.ca) if args.ca else ssl._create_unverified_context()
        if args.cert:
            ctx.load_cert_chain(args.cert, args.key)
        ctx.set_alpn_protocols(args.alpn.split(","))

    probes = []
    done = threading.Event()

    def prober():
        # The legitimate client runs from the first connection to the end of the hold.
        while args.probe:
            ok, took, out = probe(args.probe)
            probes.append((ok, took))
            phase = "holding" if opened.is_set() else "opening"
            print(f"probe ({phase}): {'served' if ok else 'FAILED'} in {took * 1000:.0f} ms {'' if ok else out}",
                  flush=True)
            if done.wait(args.probe_every):
                return

    opened = threading.Event()
    thread = threading.Thread(target=prober)
    thread.start()
    held, failed = [], 0
    started = time.monotonic()

    def attempt(source):
        try:
            return open_one(args.attack, source, target, ctx, args.server_name, 5.0)
        except (OSError, ssl.SSLError, ConnectionError):
            return None

    work = [source for source in srcs for _ in range(args.per_source)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        for sock in pool.map(attempt, work):
            if sock is None:
                failed += 1
            else:
                held.append(sock)
    opened_in = time.monotonic() - started
    opened.set()
    print(f"attack: {args.attack} from {len(srcs)} address(es) x {args.per_source}: "
          f"{len(held)} opened, {failed} refused or cut while opening ({opened_in:.1f} s)", flush=True)
    alive_after_open = sum(1 for s in held if still_open(s))
    print(f"right after opening: {alive_after_open} of {len(held)} attacker connections open", flush=True)
    time.sleep(hold)
    done.set()
    thread.join()
    alive = sum(1 for s in held if still_open(s))
    print(f"after {hold:.0f} s: {alive} of {len(held)} attacker connections still open")
    if probes:
        served = sum(1 for ok, _ in probes if ok)
        print(f"probes: {served}/{len(probes)} served")
    for s in held:
        s.close()
    sys.exit(0 if all(ok for ok, _ in probes) else 1)


if __name__ == "__main__":
    main()
