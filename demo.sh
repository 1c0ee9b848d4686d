#!/usr/bin/env bash
# The README's demo: installs the Debian packages the build needs when they
# are missing (samael, the console's SAML library, links libxmlsec1 and
# generates its bindings with libclang), then runs
#   cargo run --release -- run --demo
# Extra arguments go to `postern run`.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists xmlsec1 2>/dev/null || need+=(libxmlsec1-dev)
pkg-config --exists libxml-2.0 2>/dev/null || need+=(libxml2-dev)
pkg-config --exists libxslt 2>/dev/null || need+=(libxslt1-dev)
pkg-config --exists openssl 2>/dev/null || need+=(libssl-dev)
dpkg-query -W -f='${Status}' libclang-dev 2>/dev/null | grep -q "ok installed" || need+=(libclang-dev clang)
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "==> installing the Debian packages the build needs: ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
exec cargo run --release -- run --demo "$@"
