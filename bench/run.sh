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
#        KIND=http|ses|sendgrid picks the upstream kind postern delivers with; the sink plays
#        that API (bench/upstreams.sh compares them). RESULT_FILE=FILE appends one JSON line
#        per mode with the numbers.
#        SENDERS=N makes the load generator cycle MAIL FROM (and From) through N addresses
#        bench-<i>@example.com (default: the single bench@example.com). QUOTA=1 adds a [quota]
#        section limiting every key kind (credential, sender, domain, ip; per minute, hour and
#        day; messages and recipients) far above what the run sends, so every check runs in
#        full and nothing is refused (bench/quota_e2e.sh compares it with no [quota]);
#        QUOTA=messages sets the message limits only.
#        NEWCONN=1: a new connection (and TLS session and AUTH) per message; RESUME=0: no TLS
#        session resumption (every handshake full). RATE=R offers R msg/s in all (paced; the
#        p99 at that load) instead of as fast as the sessions go.
#        After each run the keys in state_dir/quota-state.json are counted per kind.
#        PERF_OUT=FILE records postern with `perf record --call-graph dwarf` for the load phase
#        (PERF_FREQ=999) into FILE; with several MODES, FILE.<mode>. STRACE=1 writes `strace -c -f`'s
#        syscall counts to FILE instead. BENCH_TMP=DIR puts the run directory (and so the spool)
#        under DIR instead of /tmp (BENCH_TMP=/dev/shm: what the spool's disk work costs).
#        KEEP_WORK=1 leaves the run's directory (spool, logs, loadgen output) in place.
#        THREADS_OUT=FILE appends postern's CPU seconds and context switches (voluntary and
#        involuntary, since start) per thread name (the spool writer, the runtime workers, ...)
#        at the end of the load to FILE.
#        LOG_LEVEL=warn LOG_FORMAT=text set [log] level and format; LOG_EXTRA="audit_file = ..."
#        adds [log] lines (bench/observability.sh uses them). {DIR} in EXTRA_CONFIG or
#        LOG_EXTRA is replaced by the run's directory.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/bench/lib.sh"
COUNT="${COUNT:-20000}"
SESSIONS="${SESSIONS:-20}"
SIZE="${SIZE:-4096}"
MODES="${MODES:-plain starttls}"
KIND="${KIND:-http}"
case "$KIND" in http | ses | sendgrid) ;; *) echo "unknown KIND $KIND (http | ses | sendgrid)" >&2; exit 2 ;; esac
SENDERS="${SENDERS:-}"
QUOTA="${QUOTA:-}"
WAIT_S="${WAIT_S:-600}"          # upper bound for draining the spool into the sink

if [ -z "${SKIP_BUILD:-}" ]; then    # SKIP_BUILD=1 reuses target/release/postern as is
    echo "== building (release)" >&2
    (cd "$ROOT" && cargo build --release --quiet)
fi
(cd "$ROOT/bench/loadgen" && cargo build --release --quiet)
POSTERN="${POSTERN:-$ROOT/target/release/postern}"   # POSTERN=PATH runs another binary
LG="$ROOT/bench/loadgen/target/release"

bench_work bench




"$LG/certs" --out "$WORK/certs"
PASSWORD="bench-password-$$"
# Throwaway keys for the provider kinds (secrets are references, never literals).
export POSTERN_BENCH_AWS_KEY_ID="AKIDBENCH$$"
export POSTERN_BENCH_AWS_SECRET="bench-secret-$$"
export POSTERN_BENCH_API_KEY="SG.bench-key-$$"

upstream_toml() {  # the [upstreams.sink] table for KIND, delivering to the sink on port $1
    case "$KIND" in
        http) cat <<TOML
[upstreams.sink]
kind = "http"
url = "https://127.0.0.1:$1/send"
ca_file = "$WORK/certs/ca.pem"
TOML
            ;;
        ses) cat <<TOML
[upstreams.sink]
kind = "ses"
region = "eu-west-1"
base_url = "https://127.0.0.1:$1"
access_key_id = "env:POSTERN_BENCH_AWS_KEY_ID"
secret_access_key = "env:POSTERN_BENCH_AWS_SECRET"
ca_file = "$WORK/certs/ca.pem"
TOML
            ;;
        sendgrid) cat <<TOML
[upstreams.sink]
kind = "sendgrid"
base_url = "https://127.0.0.1:$1"
api_key = "env:POSTERN_BENCH_API_KEY"
ca_file = "$WORK/certs/ca.pem"
TOML
            ;;
        *) echo "unknown KIND $KIND (http | ses | sendgrid)" >&2; return 2 ;;
    esac
}
quota_toml() {  # every limit on every key kind, far above a run's 20,000 messages in seconds
    local kind
    for kind in credential sender domain ip; do
        cat <<TOML
[quota.$kind]
per_minute = 1000000
per_hour = 10000000
per_day = 100000000
TOML
        # QUOTA=messages: message limits only (no recipient check at RCPT).
        if [ "$QUOTA" != messages ]; then
            cat <<TOML
recipients_per_minute = 1000000
recipients_per_hour = 10000000
recipients_per_day = 100000000
TOML
        fi
        echo
    done
}
HASH="$(printf '%s\n' "$PASSWORD" | "$POSTERN" hash-secret)"

run_mode() {
    local mode="$1"
    local dir="$WORK/$mode"
    mkdir -p "$dir/state"
    local sink_port smtp_port tls_mode
    sink_port="$(free_port)"
    smtp_port="$(free_port)"
    if [ "$mode" = plain ]; then tls_mode=none; else tls_mode=starttls; fi

    "$LG/sink" --certs "$WORK/certs" --port "$sink_port" --expect "$COUNT" --api "$KIND" \
        --done-file "$dir/sink-done.json" 2>"$dir/sink.log" &
    local sink_pid=$!
    PIDS+=("$sink_pid")
    wait_port "$sink_port"

    cat >"$dir/postern.toml" <<TOML
[server]
hostname = "bench.test"
state_dir = "$dir/state"
max_connections = 2000
max_connections_per_ip = 1000
# Each loadgen session sends about COUNT/SESSIONS messages (one RCPT each)
# on one connection: lift the per-session RCPT limit so the default 1000
# does not end sessions mid-run.
max_rcpt_commands = 1000000

[tls]
certificate = "$WORK/certs/server.pem"
private_key = "$WORK/certs/server.key"

[[listeners]]
address = "127.0.0.1:$smtp_port"
tls = "$tls_mode"

[log]
format = "${LOG_FORMAT:-text}"
level = "${LOG_LEVEL:-warn}"
${LOG_EXTRA:-}

[credentials.bench]
username = "bench"
secret_hash = "$HASH"
allowed_senders = ["*@example.com"]

[credentials.local]
networks = ["127.0.0.0/8"]
allowed_senders = ["*@example.com"]

[routes.default]
upstreams = ["sink"]

TOML
    upstream_toml "$sink_port" >>"$dir/postern.toml"
    if [ -n "$QUOTA" ]; then quota_toml >>"$dir/postern.toml"; fi
    if [ -n "${EXTRA_CONFIG:-}" ]; then sed "s|{DIR}|$dir|g" "$EXTRA_CONFIG" >>"$dir/postern.toml"; fi
    sed -i "s|{DIR}|$dir|g" "$dir/postern.toml"

    "$POSTERN" run --config "$dir/postern.toml" 2>"$dir/postern.log" &
    local postern_pid=$!
    PIDS+=("$postern_pid")
    wait_port "$smtp_port"

    local perf_pid=""
    if [ -n "${PERF_OUT:-}" ]; then
        local perf_file="$PERF_OUT"
        if [ "$(wc -w <<<"$MODES")" -gt 1 ]; then perf_file="$PERF_OUT.$mode"; fi
        if [ -n "${STRACE:-}" ]; then   # STRACE=1: count syscalls instead (strace -c -f)
            strace -c -f -p "$postern_pid" -o "$perf_file" 2>"$dir/perf.log" &
        else
            perf record -q -F "${PERF_FREQ:-999}" --call-graph dwarf,16384 -p "$postern_pid" -o "$perf_file" 2>"$dir/perf.log" &
        fi
        perf_pid=$!
        sleep 1
    fi
    echo "== kind=$KIND mode=$mode count=$COUNT sessions=$SESSIONS size=$SIZE senders=${SENDERS:-1} quota=${QUOTA:-none}" >&2
    local wrap=()
    if [ -x /usr/bin/time ]; then
        wrap=(/usr/bin/time -f "user %U s, sys %S s" -o "$dir/loadgen.time")
    fi
    "${wrap[@]}" "$LG/loadgen" --mode "$mode" --certs "$WORK/certs" --port "$smtp_port" \
        --user bench --pass "$PASSWORD" --sessions "$SESSIONS" --count "$COUNT" \
        --size "$SIZE" ${SENDERS:+--senders "$SENDERS"} ${NEWCONN:+--new-connection 1} \
        ${RESUME:+--resume "$RESUME"} ${RATE:+--rate "$RATE"} >"$dir/loadgen.out" || echo "loadgen reported failure (see below)" >&2
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
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
    fi
    local hwm
    hwm="$(awk '/^VmHWM/ {print $2 " " $3}' "/proc/$postern_pid/status" 2>/dev/null || echo "?")"
    # CPU seconds (user + system) postern and the sink used over the whole run:
    # per message, this is the cost of the upstream kind that throughput on a
    # shared machine only shows through noise.
    local cpu
    cpu="$(cpu_s "$postern_pid") $(cpu_s "$sink_pid")"
    if [ -n "${THREADS_OUT:-}" ]; then   # CPU seconds per thread name, appended to THREADS_OUT
        for t in /proc/"$postern_pid"/task/*; do
            echo "$(cat "$t/comm" 2>/dev/null) $(cpu_s "${t#/proc/}" 0)" \
                "$(awk '/^(non)?voluntary_ctxt_switches/ { print $2 }' "$t/status" 2>/dev/null | xargs)"
        done | awk -v m="$mode" '{ s[$1] += $2; v[$1] += $3; n[$1] += $4 }
            END { for (t in s) printf "%s %s %.3f s, %d voluntary + %d involuntary switches\n", m, t, s[t], v[t], n[t] }' |
            sort >>"$THREADS_OUT"
    fi

    kill -TERM "$postern_pid" 2>/dev/null || true
    wait "$postern_pid" 2>/dev/null || true
    kill "$sink_pid" 2>/dev/null || true
    wait "$sink_pid" 2>/dev/null || true

    KIND="$KIND" RESULT_FILE="${RESULT_FILE:-}" CPU="$cpu" \
    QUOTA="$QUOTA" SENDERS="${SENDERS:-}" \
    python3 - "$dir/loadgen.out" "$dir/sink-done.json" "$hwm" "$COUNT" "$dir/loadgen.time" \
        "$dir/state/quota-state.json" <<'PY'
import json, os, sys
out, done, hwm, count, tfile = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
qfile = sys.argv[6]
result = {"kind": os.environ["KIND"], "mode": None, "e2e_msgs_per_s": None,
          "quota": bool(os.environ.get("QUOTA")), "senders": int(os.environ.get("SENDERS") or 1)}
kv = dict(l.split("=", 1) for l in open(out).read().splitlines() if "=" in l and not l.startswith("error:"))
print(f"mode {kv['mode']}: accepted {kv['accepted']}/{count} errors {kv['errors']} "
      f"refused (451) {kv.get('refused_451', '?')}")
if "refused_451" in kv:
    result["refused_451"] = int(kv["refused_451"])
result.update(mode=kv["mode"], accepted=int(kv["accepted"]), accept_msgs_per_s=float(kv["msgs_per_s"]),
              p50_ms=float(kv["latency_p50_ms"]), p99_ms=float(kv["latency_p99_ms"]))
print(f"  acceptance: {kv['msgs_per_s']} msg/s over {kv['elapsed_s']} s; "
      f"latency p50 {kv['latency_p50_ms']} ms, p99 {kv['latency_p99_ms']} ms, max {kv['latency_max_ms']} ms")
if kv.get("slow"):
    print(f"  over 10 ms (start ms:latency ms since the load began): {kv['slow']}")
if os.path.exists(done):
    d = json.load(open(done))
    e2e = (d["last_unix_ns"] - int(kv["start_unix_ns"])) / 1e9
    print(f"  end-to-end: sink had all {d['distinct']} messages after {e2e:.3f} s "
          f"({d['distinct'] / e2e:.0f} msg/s; {d['requests']} HTTP requests)")
    if "h2_requests" in d:
        print(f"  sink: {d['h2_requests']} HTTP/2 + {d['h1_requests']} HTTP/1.1 requests over "
              f"{d['h2_connections']} h2 + {d['h1_connections']} http/1.1 connections; "
              f"{d['rejected']} rejected")
    result.update(e2e_s=round(e2e, 3), e2e_msgs_per_s=round(d["distinct"] / e2e, 1),
                  **{k: d[k] for k in d if k.endswith(("_requests", "_connections", "rejected"))})
else:
    print("  end-to-end: INCOMPLETE (sink did not receive every message)")
print(f"  postern peak RSS (VmHWM): {hwm}")
try:
    pcpu, scpu = (float(x) for x in os.environ["CPU"].split())
    n = int(kv["accepted"]) or 1
    print(f"  CPU: postern {pcpu:.2f} s ({pcpu / n * 1e6:.0f} us/message), sink {scpu:.2f} s ({scpu / n * 1e6:.0f} us/message)")
    result.update(postern_cpu_us=round(pcpu / n * 1e6, 1), sink_cpu_us=round(scpu / n * 1e6, 1))
except ValueError:
    pass
if os.path.exists(tfile):
    print(f"  load generator CPU (to show it is not the bottleneck): {open(tfile).read().strip()}")
result["peak_rss"] = hwm
# Saved at shutdown: the hour/day counters of every key that still counts something.
if os.path.exists(qfile):
    try:
        keys = json.load(open(qfile))["keys"]
        by_dim = {}
        for k in keys:
            by_dim[k["dim"]] = by_dim.get(k["dim"], 0) + 1
        print(f"  quota state: {len(keys)} keys saved ({', '.join(f'{d} {n}' for d, n in sorted(by_dim.items()))}), "
              f"{os.path.getsize(qfile)} bytes")
        result.update(quota_keys=len(keys), quota_keys_by_dim=by_dim)
    except (ValueError, KeyError, TypeError) as e:
        print(f"  quota state: unreadable ({e})")
if os.environ.get("RESULT_FILE"):
    with open(os.environ["RESULT_FILE"], "a") as f:
        f.write(json.dumps(result) + "\n")
PY
}

for m in $MODES; do
    run_mode "$m"
done
