#!/usr/bin/env bash
# postern's memory under issue 14's three conditions, each on a fresh postern
# (release build, fsync'd spool, `http` upstream to bench/loadgen's sink):
#   idle   N idle connections (default 10,000) that each read the greeting
#          and then wait: VmRSS before, with all N open, and VmHWM
#          (target: peak ≤ 200 MB)
#   big    one 30 MiB message over one plaintext session, delivered to the
#          sink: VmHWM (target ≤ 120 MB)
#   auth   COUNT (default 2,000) messages with STARTTLS + AUTH PLAIN on a new
#          connection each, full handshakes (loadgen --new-connection 1
#          --resume 0, 20 sessions): VmRSS at start, VmHWM, and VmRSS 5 s
#          after the run (target: back within 50 MB of the start)
#
# Usage: bench/memory.sh   (env: CASES="idle big auth" IDLE=10000 BIG_MIB=30 COUNT=2000 SKIP_BUILD=)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/bench/lib.sh"
CASES="${CASES:-idle big auth}"
IDLE="${IDLE:-10000}"
BIG_MIB="${BIG_MIB:-30}"
COUNT="${COUNT:-2000}"
if [ -z "${SKIP_BUILD:-}" ]; then (cd "$ROOT" && cargo build --release --quiet); fi
(cd "$ROOT/bench/loadgen" && cargo build --release --quiet)
POSTERN="${POSTERN:-$ROOT/target/release/postern}"
LG="$ROOT/bench/loadgen/target/release"
bench_work memory
ulimit -n "$(ulimit -Hn)"   # each side of N idle connections holds N descriptors

mem() {  # VmRSS or VmHWM of $1, in MB
    awk -v k="$2:" '$1 == k { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

"$LG/certs" --out "$WORK/certs"
PASSWORD="bench-password-$$"
HASH="$(printf '%s\n' "$PASSWORD" | "$POSTERN" hash-secret)"

start() {  # case name, listener tls mode, expected sink messages; sets PP (postern pid) and SMTP
    local name="$1" tls="$2" expect="$3" dir="$WORK/$1"
    mkdir -p "$dir/state"
    local sink_port; sink_port="$(free_port)"; SMTP="$(free_port)"
    "$LG/sink" --certs "$WORK/certs" --port "$sink_port" --expect "$expect" --api http \
        --done-file "$dir/sink-done.json" 2>"$dir/sink.log" &
    PIDS+=("$!")
    wait_port "$sink_port"
    cat >"$dir/postern.toml" <<TOML
[server]
hostname = "bench.test"
state_dir = "$dir/state"
max_connections = $((IDLE + 100))
max_connections_per_ip = $((IDLE + 100))
max_message_size = "$((BIG_MIB + 10))MiB"

[tls]
certificate = "$WORK/certs/server.pem"
private_key = "$WORK/certs/server.key"

[[listeners]]
address = "127.0.0.1:$SMTP"
tls = "$tls"

[log]
level = "warn"

[credentials.bench]
username = "bench"
secret_hash = "$HASH"
allowed_senders = ["*@example.com"]

[credentials.local]
networks = ["127.0.0.0/8"]
allowed_senders = ["*@example.com"]

TOML
    sink_upstream_toml "$sink_port" >>"$dir/postern.toml"
    "$POSTERN" run --config "$dir/postern.toml" 2>"$dir/postern.log" &
    PP=$!
    PIDS+=("$PP")
    wait_port "$SMTP"
    sleep 1
}
wait_sink() {  # bounded: 300 s
    for _ in $(seq 1 3000); do [ -f "$WORK/$1/sink-done.json" ] && return 0; sleep 0.1; done
    echo "sink never got every message ($1)" >&2; return 1
}

for c in $CASES; do
    case "$c" in
        idle)
            start idle none 1
            before="$(mem "$PP" VmRSS)"
            python3 - "$SMTP" "$IDLE" "$PP" <<'PY'
import socket, sys, time
port, n, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    socks.append(s)
greeted = 0
for s in socks:
    s.settimeout(30)
    if s.recv(512).startswith(b"220"):
        greeted += 1
time.sleep(2)
rss = [l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith(("VmRSS", "VmHWM"))]
print(f"idle: {greeted}/{n} connections greeted and held; postern VmRSS {int(rss[1]) / 1024:.1f} MB, VmHWM {int(rss[0]) / 1024:.1f} MB")
for s in socks:
    s.close()
PY
            echo "idle: VmRSS before the connections $before MB (target: peak <= 200 MB)"
            ;;
        big)
            start big none 1
            "$LG/loadgen" --mode plain --certs "$WORK/certs" --port "$SMTP" --sessions 1 --count 1 \
                --size $((BIG_MIB * 1024 * 1024)) >"$WORK/big/loadgen.out"
            grep -E '^(accepted|errors)=' "$WORK/big/loadgen.out" | tr '\n' ' '
            wait_sink big
            echo "big: one ${BIG_MIB} MiB message accepted and delivered; postern VmHWM $(mem "$PP" VmHWM) MB (target <= 120 MB)"
            ;;
        auth)
            start auth starttls "$COUNT"
            before="$(mem "$PP" VmRSS)"
            "$LG/loadgen" --mode starttls --certs "$WORK/certs" --port "$SMTP" --user bench --pass "$PASSWORD" \
                --sessions 20 --count "$COUNT" --new-connection 1 --resume 0 >"$WORK/auth/loadgen.out"
            grep -E '^(accepted|errors|msgs_per_s)=' "$WORK/auth/loadgen.out" | tr '\n' ' '
            wait_sink auth
            sleep 5
            after="$(mem "$PP" VmRSS)"
            echo "auth: VmRSS at start $before MB, peak (VmHWM) $(mem "$PP" VmHWM) MB, 5 s after the run $after MB" \
                "(+$(python3 -c "print(round($after - $before, 1))") MB; target: within 50 MB)"
            ;;
        *) echo "unknown case $c (idle | big | auth)" >&2; exit 2 ;;
    esac
    kill "$PP" 2>/dev/null || true
done
