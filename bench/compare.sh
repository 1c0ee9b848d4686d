#!/usr/bin/env bash
# postern against a stock Postfix relay, in one run on this machine (issue
# 14's targets), and prints one table:
#   postfix   Postfix reference: loadgen → postfix (durable queue) → smtp-sink,
#             new connection per message, no DKIM, no TLS (bench/postfix_ref.sh)
#   (a)       new connection per message, plaintext, `networks` credential,
#             Ed25519 DKIM, fsync'd spool, HTTPS/2 upstream (bench/loadgen sink)
#   (b)       the same over reused connections
#   (c)       STARTTLS + AUTH PLAIN on every connection, full handshakes
#   (c-resume) the same with TLS session resumption
#   (c-rsa)   (c) with RSA-2048 DKIM (reported, no target)
#   (a-1000), (c-1000)  (a) and (c) paced at 1,000 msg/s offered: the p99
#             acceptance latency at that load (target < 10 ms)
# Each postern row: acceptance msg/s, end-to-end msg/s (the sink has every
# message), p99 acceptance latency, postern CPU per message (user + system
# from /proc over the whole run, steadier than throughput on a shared
# machine), peak RSS; and the ratio of (a) to Postfix.
#
# Usage: bench/compare.sh   (env: COUNT=20000 SESSIONS=20 SIZE=4096 ROWS="postfix a b c c-resume c-rsa a-1000 c-1000")
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export COUNT="${COUNT:-20000}" SESSIONS="${SESSIONS:-20}" SIZE="${SIZE:-4096}"
ROWS="${ROWS:-postfix a b c c-resume c-rsa a-1000 c-1000}"
(cd "$ROOT" && cargo build --release --quiet)
(cd "$ROOT/bench/loadgen" && cargo build --release --quiet)
POSTERN="$ROOT/target/release/postern"

WORK="$(mktemp -d /tmp/postern-compare.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"

key() {  # a [[dkim]] table for example.com with algorithm $1
    "$POSTERN" dkim keygen --domain example.com --selector "cmp-$1" --algorithm "$1" \
        --out "$WORK" 2>/dev/null | sed -n '/^\[\[dkim\]\]/,$p' >"$WORK/$1.toml"
}
key ed25519
key rsa

row() {  # name, then env assignments for bench/run.sh
    local name="$1"
    shift
    echo "=================== $name ===================" >&2
    env "$@" SKIP_BUILD=1 RESULT_FILE="$WORK/$name.json" "$ROOT/bench/run.sh" >&2
    python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().splitlines()[-1]); r["row"]=sys.argv[2]; print(json.dumps(r))' \
        "$WORK/$name.json" "$name" >>"$RESULTS"
}

for r in $ROWS; do
    case "$r" in
        postfix)
            echo "=================== postfix ===================" >&2
            "$ROOT/bench/postfix_ref.sh" | tee "$WORK/postfix.out" >&2
            python3 - "$WORK/postfix.out" "$COUNT" >>"$RESULTS" <<'PY'
import json, sys
kv = dict(l.split("=", 1) for l in open(sys.argv[1]).read().splitlines() if "=" in l)
n = int(kv["accepted"]) or 1
print(json.dumps({"row": "postfix", "accept_msgs_per_s": float(kv["msgs_per_s"]),
                  "p99_ms": float(kv["latency_p99_ms"]),
                  "postern_cpu_us": round(float(kv["postfix_cpu_s"]) / n * 1e6, 1),
                  "queue_left": int(kv["postfix_queue_left"])}))
PY
            ;;
        a) row a MODES=plain NEWCONN=1 EXTRA_CONFIG="$WORK/ed25519.toml" ;;
        b) row b MODES=plain EXTRA_CONFIG="$WORK/ed25519.toml" ;;
        c) row c MODES=starttls NEWCONN=1 RESUME=0 EXTRA_CONFIG="$WORK/ed25519.toml" ;;
        c-resume) row c-resume MODES=starttls NEWCONN=1 RESUME=1 EXTRA_CONFIG="$WORK/ed25519.toml" ;;
        c-rsa) row c-rsa MODES=starttls NEWCONN=1 RESUME=0 EXTRA_CONFIG="$WORK/rsa.toml" ;;
        a-1000) row a-1000 MODES=plain NEWCONN=1 RATE=1000 EXTRA_CONFIG="$WORK/ed25519.toml" ;;
        c-1000) row c-1000 MODES=starttls NEWCONN=1 RESUME=0 RATE=1000 EXTRA_CONFIG="$WORK/ed25519.toml" ;;
        *) echo "unknown row $r" >&2; exit 2 ;;
    esac
done

python3 - "$RESULTS" "$COUNT" "$SESSIONS" "$SIZE" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"count={sys.argv[2]} sessions={sys.argv[3]} size={sys.argv[4]}")
print("| row | accepted msg/s | end-to-end msg/s | p99 accept ms | CPU µs/msg | peak RSS |")
print("|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['row']} | {r.get('accept_msgs_per_s', '?'):.0f} | {r.get('e2e_msgs_per_s') or '-'} | "
          f"{r.get('p99_ms', '?')} | {r.get('postern_cpu_us', '?')} | {r.get('peak_rss', '-')} |")
by = {r["row"]: r for r in rows}
if "postfix" in by and "a" in by:
    print(f"(a) / Postfix, accepted msg/s: {by['a']['accept_msgs_per_s'] / by['postfix']['accept_msgs_per_s']:.2f}x")
PY
