#!/usr/bin/env bash
# Makes sure redis-server is available for the Redis-backed tests, which start
# their own server on a free loopback port. Installs Debian's package when it
# can (root with apt-get); otherwise says how.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "redis: installing Debian's redis-server package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  # The tests start their own servers; the packaged service is not needed.
  if command -v service >/dev/null 2>&1; then service redis-server stop >/dev/null 2>&1 || true; fi
  exit 0
fi
cat >&2 <<'MSG'
redis-server is not installed and this user cannot install it.
Install it, then run make again:
  Debian/Ubuntu: sudo apt-get install redis-server
  macOS:         brew install redis
MSG
exit 1
