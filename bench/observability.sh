#!/usr/bin/env bash
# What the audit trail and metrics cost: bench/run.sh in interleaved rounds
# of three variants: "off" (no [admin], [log] level = "off"), "json" ([log]
# level = "info" as JSON lines on stderr, [admin] serving /metrics, scraped
# every second during the run) and "json+file" (the same plus [log]
# audit_file, so every audit event is written twice), and the postern CPU
# per message of each round side by side. Throughput varies about +-10% on the shared 2-core
# machine; CPU per message is steadier, so that is the figure compared.
#
# Usage: bench/observability.sh   (env as for bench/run.sh: COUNT SESSIONS SIZE MODES;
#                                  ROUNDS=3 pairs)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ROUNDS="${ROUNDS:-3}"
export MODES="${MODES:-plain}"

echo "== building (release)" >&2
(cd "$ROOT" && cargo build --release --quiet)

WORK="$(mktemp -d /tmp/postern-bench-obs.XXXXXX)"
SCRAPER=""
trap '[ -n "$SCRAPER" ] && kill "$SCRAPER" 2>/dev/null; rm -rf "$WORK"' EXIT
ADMIN_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
printf '[admin]\naddress = "127.0.0.1:%s"\n' "$ADMIN_PORT" >"$WORK/admin.toml"
: >"$WORK/none.toml"

scrape() {  # GET /metrics every second while postern runs
    while true; do
        curl -s -o /dev/null "http://127.0.0.1:$ADMIN_PORT/metrics" || true
        sleep 1
    done
}

for i in $(seq 1 "$ROUNDS"); do
    for variant in off json json+file; do
        echo "=================== observability: $variant (round $i) ==================="
        if [ "$variant" = off ]; then
            SKIP_BUILD=1 LOG_LEVEL=off EXTRA_CONFIG="$WORK/none.toml" \
                RESULT_FILE="$WORK/off.jsonl" "$ROOT/bench/run.sh"
        else
            extra=""
            [ "$variant" = "json+file" ] && extra='audit_file = "{DIR}/audit.json"'
            scrape &
            SCRAPER=$!
            SKIP_BUILD=1 LOG_LEVEL=info LOG_FORMAT=json LOG_EXTRA="$extra" \
                EXTRA_CONFIG="$WORK/admin.toml" RESULT_FILE="$WORK/$variant.jsonl" "$ROOT/bench/run.sh"
            kill "$SCRAPER" 2>/dev/null || true
            wait "$SCRAPER" 2>/dev/null || true
            SCRAPER=""
        fi
    done
done

python3 - "$WORK/off.jsonl" "$WORK/json.jsonl" "$WORK/json+file.jsonl" <<'PY'
import json, statistics, sys
runs = [[json.loads(l) for l in open(f)] for f in sys.argv[1:]]
names = ["off", "json", "json+file"]
print("\nround  " + "  ".join(f"{n:>10} us/msg" for n in names) + "   json over off   json+file over off")
over = {1: [], 2: []}
for i, rs in enumerate(zip(*runs), 1):
    cpu = [r["postern_cpu_us"] for r in rs]
    for k in (1, 2):
        over[k].append(cpu[k] / cpu[0] - 1)
    print(f"{i:5}  " + "  ".join(f"{c:17.1f}" for c in cpu)
          + f"   {over[1][-1]*100:+12.1f}%   {over[2][-1]*100:+17.1f}%")
for k in (1, 2):
    print(f"median CPU-per-message overhead, {names[k]}: {statistics.median(over[k])*100:+.1f}%")
PY
