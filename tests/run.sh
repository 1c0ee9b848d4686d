#!/usr/bin/env bash
# The whole test suite. Installs what the tests need when it is missing:
# swaks, dnsmasq-base, bsdutils (script), promtool, systemd-analyze and strace (Debian packages)
# and a Python venv (.venv) for the Python clients.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v swaks >/dev/null 2>&1 || need_apt+=(swaks)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
# `script` gives the spool purge test a terminal to be asked on (util-linux).
command -v script >/dev/null 2>&1 || need_apt+=(bsdutils)
# DNS tests run a private dnsmasq on loopback; -base is the binary without the system service.
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need_apt+=(dnsmasq-base)
# The systemd tests check the units with systemd-analyze (verify, security) and hold
# daemon threads up with strace's fault injection to show the watchdog stops pinging.
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v strace >/dev/null 2>&1 || need_apt+=(strace)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "==> installing Debian packages: ${need_apt[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi
# promtool checks /metrics; Debian ships it in the prometheus package, whose
# server is not wanted: no recommends, and it does not stay running.
if ! command -v promtool >/dev/null 2>&1; then
    echo "==> installing Debian package: prometheus (for promtool)"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus
    if command -v systemctl >/dev/null 2>&1; then
        $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
fi

if [ ! -x .venv/bin/python ]; then
    echo "==> creating Python venv in .venv"
    python3 -m venv .venv
fi
if [ -s tests/requirements.txt ]; then
    .venv/bin/pip install -q -r tests/requirements.txt
fi
export POSTERN_PYTHON="$PWD/.venv/bin/python"

echo "==> cargo test"
cargo build --all-targets
# Benches (bench/) are built above but not run: they are measurements, not tests.
cargo test --lib --bins --tests -- --test-threads="${POSTERN_TEST_THREADS:-4}"
