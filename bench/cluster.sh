#!/usr/bin/env bash
# Scale-out benchmarks (issue 15), on loopback with private redis-server and
# HAProxy instances:
#
# 1. The cost of the shared quota check: bench/run.sh's load with QUOTA=1
#    (every key kind limited, far above the load, so every check runs in
#    full), once with the counters in process and once in Redis
#    ([cluster]), REPEAT paired rounds, interleaved and alternating which
#    goes first. Prints postern's CPU per message for each and the
#    difference as a share of the in-process cost (target: under 10%), and
#    redis-server's own CPU per message beside it.
# 2. Three nodes behind HAProxy (mode tcp, send-proxy-v2, round robin,
#    quotas in Redis) against one node alone (quotas in Redis too), same
#    load, REPEAT interleaved rounds: end-to-end messages per second.
#    On one machine the three nodes share its cores, so this shows the
#    overhead of the extra hop and processes, not the gain of more machines.
#
# Usage: bench/cluster.sh   (env: REPEAT=3 SETTLE=3 COUNT=10000 SESSIONS=20 SIZE=4096
#                            PARTS="cost scale" SKIP_BUILD= POSTERN=path;
#                            COST_QUOTA=messages: message limits only, one Redis
#                            round trip per message instead of two)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/bench/lib.sh"
REPEAT="${REPEAT:-3}"
SETTLE="${SETTLE:-3}"
COUNT="${COUNT:-10000}"
SESSIONS="${SESSIONS:-20}"
SIZE="${SIZE:-4096}"
PARTS="${PARTS:-cost scale}"
export COUNT SESSIONS SIZE

if [ -z "${SKIP_BUILD:-}" ]; then
    echo "== building (release)" >&2
    (cd "$ROOT" && cargo build --release --quiet)
fi
(cd "$ROOT/bench/loadgen" && cargo build --release --quiet)
LG="$ROOT/bench/loadgen/target/release"

TMP="$(mktemp -d /tmp/postern-bench-cluster.XXXXXX)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
cp "${POSTERN:-$ROOT/target/release/postern}" "$TMP/postern"
RESULTS="$TMP/results.jsonl"

REDIS_PORT="$(free_port)"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" \
    >"$TMP/redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
wait_port "$REDIS_PORT"

cat >"$TMP/cluster.toml" <<TOML

[cluster]
redis = "redis://127.0.0.1:$REDIS_PORT"
node_id = "bench"
expected_nodes = 1
TOML

cost() {
    for r in $(seq 1 "$REPEAT"); do
        if [ $((r % 2)) -eq 1 ]; then order="local redis"; else order="redis local"; fi
        for v in $order; do
            sync
            sleep "$SETTLE"
            echo "=================== quota counters: $v (round $r of $REPEAT) ==================="
            redis-cli -p "$REDIS_PORT" flushall >/dev/null
            local extra="" before after
            if [ "$v" = redis ]; then extra="$TMP/cluster.toml"; fi
            before="$(cpu_s "$REDIS_PID" 0)"
            SKIP_BUILD=1 POSTERN="$TMP/postern" QUOTA="${COST_QUOTA:-1}" MODES=plain EXTRA_CONFIG="$extra" \
                RESULT_FILE="$TMP/cost-$v.jsonl" "$ROOT/bench/run.sh"
            after="$(cpu_s "$REDIS_PID" 0)"
            echo "$v $before $after" >>"$TMP/redis-cpu.txt"
        done
    done
    python3 - "$TMP" "$COUNT" <<'PY'
import json, statistics, sys, os
tmp, count = sys.argv[1], int(sys.argv[2])
rows = {v: [json.loads(l) for l in open(f"{tmp}/cost-{v}.jsonl")] for v in ("local", "redis")}
cpu = {v: [r["postern_cpu_us"] for r in rows[v] if "postern_cpu_us" in r] for v in rows}
rcpu = [(float(a) - float(b)) / count * 1e6 for v, b, a in
        (l.split() for l in open(f"{tmp}/redis-cpu.txt")) if v == "redis"]
print()
print("=================== summary: quota counters in process vs in Redis ===================")
for v in ("local", "redis"):
    e2e = [r["e2e_msgs_per_s"] for r in rows[v] if r.get("e2e_msgs_per_s")]
    print(f"{v:6} postern CPU per message: median {statistics.median(cpu[v]):.0f} us "
          f"(runs {', '.join(f'{x:.0f}' for x in cpu[v])}); end-to-end median "
          f"{statistics.median(e2e) if e2e else float('nan'):.0f} msg/s; 451 refusals "
          f"{sum(r.get('refused_451', 0) for r in rows[v])}")
paired = [b - a for a, b in zip(cpu["local"], cpu["redis"])]
base = statistics.median(cpu["local"])
d = statistics.median(paired)
print(f"Redis quota check: {d:+.1f} us/message postern CPU (median of paired rounds "
      f"{', '.join(f'{x:+.0f}' for x in paired)}) = {d / base * 100:+.1f}% of {base:.0f} us/message"
      f" (target: under 10%)")
if rcpu:
    print(f"redis-server CPU per message (not included above): median {statistics.median(rcpu):.0f} us")
PY
}

# One postern node for the scale part: $1 dir, $2 SMTP port, $3 sink port, $4 proxy (1/0).
node_config() {
    local dir="$1" port="$2" sink="$3" proxy="$4"
    mkdir -p "$dir/state"
    cat >"$dir/postern.toml" <<TOML
[server]
hostname = "bench.test"
state_dir = "$dir/state"
max_connections_per_ip = 200
max_rcpt_commands = 1000000

[[listeners]]
address = "127.0.0.1:$port"
tls = "none"
TOML
    if [ "$proxy" = 1 ]; then
        printf 'proxy_protocol = true\ntrusted_proxies = ["127.0.0.1/32"]\n' >>"$dir/postern.toml"
    fi
    cat >>"$dir/postern.toml" <<TOML

[log]
format = "text"
level = "warn"

[credentials.local]
networks = ["127.0.0.0/8"]
allowed_senders = ["*@example.com"]

[routes.default]
upstreams = ["sink"]

[upstreams.sink]
kind = "http"
url = "https://127.0.0.1:$sink/send"
ca_file = "$TMP/certs/ca.pem"

[quota.credential]
per_minute = 1000000
per_hour = 10000000
per_day = 100000000

[cluster]
redis = "redis://127.0.0.1:$REDIS_PORT"
node_id = "$(basename "$dir")"
expected_nodes = 3
TOML
}

scale_round() {  # $1: "one" or "three"; appends a JSON line to $RESULTS
    local v="$1" dir="$TMP/scale-$1-$2"
    mkdir -p "$dir"
    local sink_port
    sink_port="$(free_port)"
    "$LG/sink" --certs "$TMP/certs" --port "$sink_port" --expect "$COUNT" --api http \
        --done-file "$dir/sink-done.json" 2>"$dir/sink.log" &
    local sink_pid=$!
    wait_port "$sink_port"
    local pids=() ports=() target i
    local n=1 proxy=0
    if [ "$v" = three ]; then n=3; proxy=1; fi
    for i in $(seq 1 "$n"); do
        local p
        p="$(free_port)"
        node_config "$dir/node$i" "$p" "$sink_port" "$proxy"
        "$TMP/postern" run --config "$dir/node$i/postern.toml" 2>"$dir/node$i/postern.log" &
        pids+=("$!")
        ports+=("$p")
        wait_port "$p"
    done
    local hap_pid=""
    if [ "$v" = three ]; then
        target="$(free_port)"
        {
            printf 'global\n  maxconn 2000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n'
            printf 'frontend smtp\n  bind 127.0.0.1:%s\n  default_backend nodes\nbackend nodes\n  balance roundrobin\n' "$target"
            for i in "${!ports[@]}"; do printf '  server n%s 127.0.0.1:%s send-proxy-v2\n' "$i" "${ports[$i]}"; done
        } >"$dir/haproxy.cfg"
        haproxy -db -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
        hap_pid=$!
        wait_port "$target"
    else
        target="${ports[0]}"
    fi
    "$LG/loadgen" --mode plain --certs "$TMP/certs" --port "$target" --user x --pass x \
        --sessions "$SESSIONS" --count "$COUNT" --size "$SIZE" >"$dir/loadgen.out" || true
    for _ in $(seq 1 6000); do [ -f "$dir/sink-done.json" ] && break; sleep 0.1; done
    local cpu=0
    for pid in "${pids[@]}"; do cpu="$(python3 -c "print($cpu + $(cpu_s "$pid" 0))")"; done
    for pid in "${pids[@]}" $hap_pid "$sink_pid"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}" $hap_pid "$sink_pid"; do wait "$pid" 2>/dev/null || true; done
    python3 - "$dir" "$v" "$cpu" "$COUNT" >>"$RESULTS" <<'PY'
import json, sys, os
d, v, cpu, count = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
kv = dict(l.split("=", 1) for l in open(f"{d}/loadgen.out").read().splitlines() if "=" in l and not l.startswith("error:"))
r = {"variant": v, "accepted": int(kv.get("accepted", 0)), "accept_msgs_per_s": float(kv.get("msgs_per_s", 0)),
     "p99_ms": float(kv.get("latency_p99_ms", 0)), "cpu_us": round(cpu / max(1, int(kv.get("accepted", 0))) * 1e6, 1)}
if os.path.exists(f"{d}/sink-done.json"):
    s = json.load(open(f"{d}/sink-done.json"))
    r["e2e_msgs_per_s"] = round(s["distinct"] / ((s["last_unix_ns"] - int(kv["start_unix_ns"])) / 1e9), 1)
print(json.dumps(r))
PY
    tail -1 "$RESULTS" >&2
}

scale() {
    for r in $(seq 1 "$REPEAT"); do
        if [ $((r % 2)) -eq 1 ]; then order="one three"; else order="three one"; fi
        for v in $order; do
            sync
            sleep "$SETTLE"
            echo "=================== $v node(s) (round $r of $REPEAT) ===================" >&2
            redis-cli -p "$REDIS_PORT" flushall >/dev/null
            scale_round "$v" "$r"
        done
    done
    python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print()
print("=================== summary: three nodes behind HAProxy vs one node ===================")
for v in ("one", "three"):
    rs = [r for r in rows if r["variant"] == v]
    e2e = [r["e2e_msgs_per_s"] for r in rs if "e2e_msgs_per_s" in r]
    print(f"{v:5} node(s): end-to-end median {statistics.median(e2e) if e2e else float('nan'):.0f} msg/s "
          f"(runs {', '.join(f'{x:.0f}' for x in e2e)}); acceptance median "
          f"{statistics.median(r['accept_msgs_per_s'] for r in rs):.0f} msg/s; p99 median "
          f"{statistics.median(r['p99_ms'] for r in rs):.1f} ms; postern CPU (all nodes) per message "
          f"median {statistics.median(r['cpu_us'] for r in rs):.0f} us; incomplete runs {len(rs) - len(e2e)}")
PY
}

"$LG/certs" --out "$TMP/certs"
for part in $PARTS; do
    "$part"
done
