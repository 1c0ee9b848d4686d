#!/usr/bin/env bash
# The whole test suite. Installs what the tests need when it is missing:
# Debian packages (swaks, dnsmasq-base, bsdutils, promtool, systemd-analyze, strace, haproxy, redis-server and
# the SMTP clients of the client matrix, tests/it/clients.rs), nodemailer from npm
# (tests/node) and a Python venv (.venv) for the Python clients.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        $SUDO apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@"
}

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
# The client matrix (tests/it/clients.rs; docs/clients.md): every client is a real program.
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v msmtp >/dev/null 2>&1 || need_apt+=(msmtp)
command -v php >/dev/null 2>&1 || need_apt+=(php-cli)
[ -f /usr/share/php/libphp-phpmailer/autoload.php ] || need_apt+=(libphp-phpmailer)
perl -MNet::SMTP -e 1 >/dev/null 2>&1 || need_apt+=(perl)
perl -MIO::Socket::SSL -e 1 >/dev/null 2>&1 || need_apt+=(libio-socket-ssl-perl libnet-ssleay-perl)
perl -MAuthen::SASL -e 1 >/dev/null 2>&1 || need_apt+=(libauthen-sasl-perl)
# The scale-out tests (tests/it/cluster.rs) run private HAProxy and Redis
# instances; the packages' system services are not wanted (stopped below).
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# Debian's nodejs has no npm; NodeSource's nodejs brings its own (and conflicts with Debian's npm).
[ -x /usr/bin/node ] || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || [ -x /usr/bin/node ] || need_apt+=(npm)
# Building postern: samael (the console's SAML sign-in) binds libxmlsec1 with
# bindgen (libclang) and links openssl, libxml2 and libxslt.
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
pkg-config --exists xmlsec1 2>/dev/null || need_apt+=(libxmlsec1-dev)
pkg-config --exists libxml-2.0 2>/dev/null || need_apt+=(libxml2-dev)
pkg-config --exists libxslt 2>/dev/null || need_apt+=(libxslt1-dev)
pkg-config --exists openssl 2>/dev/null || need_apt+=(libssl-dev)
dpkg-query -W -f='${Status}' libclang-dev 2>/dev/null | grep -q "ok installed" || need_apt+=(libclang-dev clang)
# The console tests' SAML IdP (tests/py/saml_idp.py, pysaml2) signs with xmlsec1;
# the browser test (tests/it/console_browser.rs) drives Debian's chromium.
command -v xmlsec1 >/dev/null 2>&1 || need_apt+=(xmlsec1)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "==> installing Debian packages: ${need_apt[*]}"
    apt_install "${need_apt[@]}"
fi
if command -v systemctl >/dev/null 2>&1; then
    for unit in haproxy redis-server; do
        if systemctl is-enabled --quiet "$unit" 2>/dev/null || systemctl is-active --quiet "$unit" 2>/dev/null; then
            $SUDO systemctl disable --now "$unit" >/dev/null 2>&1 || true
        fi
    done
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "==> installing Debian package: npm"
    apt_install npm
fi

# Postfix's SMTP client takes PLAIN and LOGIN from Cyrus SASL's modules, which
# the postfix package only suggests.
need_sasl=""
dpkg-query -W -f='${Status}' libsasl2-modules 2>/dev/null | grep -q "ok installed" || need_sasl=1
# Postfix, for the smarthost tests: only the programs. Each test runs its own
# instance from a private config directory; the system instance is left
# unconfigured ("No configuration": no main.cf, nothing listening) and, if
# the package started one anyway, stopped and disabled. --no-remove: Postfix
# replaces another MTA (exim4, ...) only when an operator decides so; without
# it the Postfix tests fail and say what is missing.
if [ ! -x /usr/sbin/postfix ]; then
    echo "==> installing Debian package: postfix (unconfigured; no system instance)"
    echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
    if apt_install --no-remove postfix libsasl2-modules; then
        need_sasl=""
        if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet postfix 2>/dev/null; then
            $SUDO systemctl disable --now postfix || true
        fi
    else
        echo "==> WARNING: postfix was not installed (another MTA would have to be removed);" \
             "the clients::postfix::postfix_smarthost_* tests will fail" >&2
    fi
fi

if [ -n "${need_sasl:-}" ]; then
    echo "==> installing Debian package: libsasl2-modules"
    apt_install libsasl2-modules
fi

if [ ! -f tests/node/node_modules/nodemailer/package.json ]; then
    echo "==> installing nodemailer (npm ci in tests/node)"
    npm ci --prefix tests/node --no-audit --no-fund
fi
# promtool checks /metrics; Debian ships it in the prometheus package, whose
# server is not wanted: no recommends, and it does not stay running.
if ! command -v promtool >/dev/null 2>&1; then
    echo "==> installing Debian package: prometheus (for promtool)"
    apt_install --no-install-recommends prometheus
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
