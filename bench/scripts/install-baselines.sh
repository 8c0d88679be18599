#!/usr/bin/env bash
# Installs the baselines tandem-bench compares against, and perf for profiling the relay
# (Debian packages), when missing.
# A baseline that cannot be installed is skipped by tandem-bench with a note in its report.
set -u
missing=()
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v socat >/dev/null 2>&1 || missing+=(socat)
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || missing+=(libnginx-mod-stream)
# perf: the profiles quoted in bench/README.md (perf record / perf stat of the relay's threads).
command -v perf >/dev/null 2>&1 || missing+=(linux-perf)
# inferno (crates.io): flame graphs of perf profiles (`perf script | inferno-collapse-perf |
# inferno-flamegraph`), as in bench/README.md's broker profile.
if ! command -v inferno-flamegraph >/dev/null 2>&1 && command -v cargo >/dev/null 2>&1; then
	echo "bench: installing inferno"
	cargo install --locked inferno >/dev/null 2>&1 || echo "bench: could not install inferno; flame graphs are skipped"
fi
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
echo "bench: installing ${missing[*]}"
if ! $sudo apt-get install -y "${missing[@]}"; then
	$sudo apt-get update -qq && $sudo apt-get install -y "${missing[@]}" \
		|| echo "bench: could not install ${missing[*]}; tandem-bench skips what is missing"
fi
exit 0
