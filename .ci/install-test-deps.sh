#!/usr/bin/env bash
# Installs the third-party servers and clients the interop tests run against (Debian bookworm,
# as root): XRootD 5.5 with the HTTP-TPC plugin, Apache mod_dav, davix and gfal2; chromium for the
# dashboard's browser test (driven by playwright-core from package.json) and prometheus for
# `promtool check metrics`. s3rver comes from package.json, not from here. Idempotent and quick when everything is present.
# Without root or apt-get it prints why and exits 0: the interop tests then report themselves skipped.
set -euo pipefail
pkgs=(xrootd-server xrootd-server-plugins xrootd-plugins xrootd-client apache2 davix
      gfal2-util-scripts python3-gfal2-util gfal2-plugin-http gfal2-plugin-file openssl curl ca-certificates
      chromium prometheus)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && { echo "install-test-deps: all present"; exit 0; }
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-test-deps: cannot install ${missing[*]} (need root and apt-get); interop tests will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# apt would start apache2 on :80 as a service; the tests run their own instances on random ports.
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; created_policy=1
fi
cleanup() { [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d; return 0; }
trap cleanup EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}"
echo "install-test-deps: installed ${missing[*]}"
