#!/usr/bin/env bash
# Installs the system packages the test suite needs, only when they are missing.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# `ip netns` for the tests that need a network of their own (the migration test's fixed ports).
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# A real HTTP forward proxy for the proxy_url tests (HTTP CONNECT, Basic auth, refusals).
command -v tinyproxy >/dev/null 2>&1 || [ -x /usr/bin/tinyproxy ] || need+=(tinyproxy)
# HAProxy in front of the engine with send-proxy-v2: the PROXY protocol tests' real headers.
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
# `systemd-analyze verify` for the deploy/systemd units test (the package installs the tool; the
# policy-rc.d below keeps it from starting anything).
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)

if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  # Packages must not start their services (tinyproxy's default port, 8888, is a dev role's gRPC
  # port): a policy-rc.d that says "no" for the length of the install, as container images do.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee "$policy" >/dev/null
    $sudo_cmd chmod +x "$policy"
    own_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
  [ "$own_policy" -eq 0 ] || $sudo_cmd rm -f "$policy"
fi
# The Debian package starts a redis-server on 6379 as a service; the tests start their own on free ports.
redis-server --version
