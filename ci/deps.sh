#!/usr/bin/env bash
# Install the Debian packages the build, tests and reports need, only when missing.
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang libclang-rt-dev libcunit1-dev libyaml-dev lcov
      libjansson-dev libmicrohttpd-dev libcurl4-openssl-dev libxml2-utils valgrind
      unicode-data python3 curl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "deps: ok"
