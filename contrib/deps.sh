#!/usr/bin/env bash
# Install the Debian 12 packages callgate needs to build, test and run its
# quickstart, but only those that are missing. Needs root (or sudo) when
# something is missing; does nothing otherwise.
set -euo pipefail

packages=(
  build-essential autoconf automake pkg-config
  libevent-dev libcurl4-openssl-dev libjansson-dev libhiredis-dev libssl-dev libcriterion-dev
  libhttp-parser-dev
  redis-server curl jq ca-certificates tzdata
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "callgate: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "callgate: run as root to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# policy-rc.d keeps Debian's redis-server package from starting a system-wide
# Redis on 6379: callgate's scripts and tests start their own, on free ports.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
