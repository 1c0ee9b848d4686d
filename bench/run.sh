#!/usr/bin/env bash
# Benchmark postern on loopback: builds release binaries, starts the HTTPS
# sink and postern, drives COUNT messages of SIZE bytes over SESSIONS
# concurrent SMTP sessions (each reusing its connection), once in plaintext on
# a `networks` credential and once with STARTTLS + AUTH PLAIN, and prints
# messages/second, p50/p99 acceptance latency, end-to-end time until the sink
# received every message, and postern's peak RSS (VmHWM).
#
# Usage: bench/run.sh   (env: COUNT=20000 SESSIONS=20 SIZE=4096 MODES="plain starttls" SKIP_BUILD=)
#        EXTRA_CONFIG=FILE appends FILE to each generated postern.toml (bench/dkim.sh uses it).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
COUNT="${COUNT:-20000}"
SESSIONS="${SESSIONS:-20}"
SIZE="${SIZE:-4096}"
MODES="${MODES:-plain starttls}"
WAIT_S="${WAIT_S:-600}"          # upper bound for draining the spool into the sink

if [ -z "${SKIP_BUILD:-}" ]; then    # SKIP_BUILD=1 reuses target/release/postern as is
    echo "== building (release)" >&2
    (cd "$ROOT" && cargo build --release --quiet)
fi
(cd "$ROOT/bench/loadgen" && cargo build --release --quiet)
POSTERN="$ROOT/target/release/postern"
LG="$ROOT/bench/loadgen/target/release"

WORK="$(mktemp -d /tmp/postern-bench.XXXXXX)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {  # bounded: 30 s
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "port $1 never opened" >&2
    return 1
}

"$LG/certs" --out "$WORK/certs"
PASSWORD="bench-password-$$"
HASH="$(printf '%s\n' "$PASSWORD" | "$POSTERN" hash-secret)"

run_mode() {
    local mode="$1"
    local dir="$WORK/$mode"
    mkdir -p "$dir/state"
    local sink_port smtp_port tls_mode
    sink_port="$(free_port)"
    smtp_port="$(free_port)"
    if [ "$mode" = plain ]; then tls_mode=none; else tls_mode=starttls; fi

    "$LG/sink" --certs "$WORK/certs" --port "$sink_port" --expect "$COUNT" \
        --done-file "$dir/sink-done.json" 2>"$dir/sink.log" &
    local sink_pid=$!
    PIDS+=("$sink_pid")
    wait_port "$sink_port"

    cat >"$dir/postern.toml" <<TOML
[server]
hostname = "bench.test"
state_dir = "$dir/state"
max_connections_per_ip = 200

[tls]
certificate = "$WORK/certs/server.pem"
private_key = "$WORK/certs/server.key"

[[listeners]]
address = "127.0.0.1:$smtp_port"
tls = "$tls_mode"

[log]
format = "text"
level = "warn"

[credentials.bench]
username = "bench"
secret_hash = "$HASH"
allowed_senders = ["*@example.com"]

[credentials.local]
networks = ["127.0.0.0/8"]
allowed_senders = ["*@example.com"]

[routes.default]
upstreams = ["sink"]

[upstreams.sink]
kind = "http"
url = "https://127.0.0.1:$sink_port/send"
ca_file = "$WORK/certs/ca.pem"
TOML
    if [ -n "${EXTRA_CONFIG:-}" ]; then cat "$EXTRA_CONFIG" >>"$dir/postern.toml"; fi

    "$POSTERN" run --config "$dir/postern.toml" 2>"$dir/postern.log" &
    local postern_pid=$!
    PIDS+=("$postern_pid")
    wait_port "$smtp_port"

    echo "== mode=$mode count=$COUNT sessions=$SESSIONS size=$SIZE" >&2
    local wrap=()
    if [ -x /usr/bin/time ]; then
        wrap=(/usr/bin/time -f "user %U s, sys %S s" -o "$dir/loadgen.time")
    fi
    "${wrap[@]}" "$LG/loadgen" --mode "$mode" --certs "$WORK/certs" --port "$smtp_port" \
        --user bench --pass "$PASSWORD" --sessions "$SESSIONS" --count "$COUNT" \
        --size "$SIZE" >"$dir/loadgen.out" || echo "loadgen reported failure (see below)" >&2
    grep '^error:' "$dir/loadgen.out" >&2 || true

    # Wait (bounded) until the sink has every message.
    local waited=0
    while [ ! -f "$dir/sink-done.json" ]; do
        if [ "$waited" -ge $((WAIT_S * 10)) ]; then
            echo "sink did not receive all $COUNT messages within ${WAIT_S}s" >&2
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    local hwm
    hwm="$(awk '/^VmHWM/ {print $2 " " $3}' "/proc/$postern_pid/status" 2>/dev/null || echo "?")"

    kill -TERM "$postern_pid" 2>/dev/null || true
    wait "$postern_pid" 2>/dev/null || true
    kill "$sink_pid" 2>/dev/null || true
    wait "$sink_pid" 2>/dev/null || true

    python3 - "$dir/loadgen.out" "$dir/sink-done.json" "$hwm" "$COUNT" "$dir/loadgen.time" <<'PY'
import json, os, sys
out, done, hwm, count, tfile = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
kv = dict(l.split("=", 1) for l in open(out).read().splitlines() if "=" in l and not l.startswith("error:"))
print(f"mode {kv['mode']}: accepted {kv['accepted']}/{count} errors {kv['errors']}")
print(f"  acceptance: {kv['msgs_per_s']} msg/s over {kv['elapsed_s']} s; "
      f"latency p50 {kv['latency_p50_ms']} ms, p99 {kv['latency_p99_ms']} ms, max {kv['latency_max_ms']} ms")
if os.path.exists(done):
    d = json.load(open(done))
    e2e = (d["last_unix_ns"] - int(kv["start_unix_ns"])) / 1e9
    print(f"  end-to-end: sink had all {d['distinct']} messages after {e2e:.3f} s "
          f"({d['distinct'] / e2e:.0f} msg/s; {d['requests']} HTTP requests)")
else:
    print("  end-to-end: INCOMPLETE (sink did not receive every message)")
print(f"  postern peak RSS (VmHWM): {hwm}")
if os.path.exists(tfile):
    print(f"  load generator CPU (to show it is not the bottleneck): {open(tfile).read().strip()}")
PY
}

for m in $MODES; do
    run_mode "$m"
done
