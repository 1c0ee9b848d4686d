#!/usr/bin/env bash
# Paired, interleaved comparison of two postern binaries under the same load:
# the way each optimisation step in BENCHMARKS.md is measured. Rounds
# alternate the order (A B, B A, ...); each run is bench/run.sh with the
# binary given by POSTERN. Prints per-round CPU per message and throughput
# and the medians; CPU per message is the figure to compare on this shared
# machine (throughput moves with whatever else runs).
#
# Usage: A=path/to/postern-before B=path/to/postern-after bench/ab.sh
#        env: ROUNDS=3, and bench/run.sh's own (default here: row (a) of
#        bench/compare.sh: MODES=plain NEWCONN=1, Ed25519 DKIM, COUNT=10000).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
: "${A:?A=binary before}" "${B:?B=binary after}"
ROUNDS="${ROUNDS:-3}"
export COUNT="${COUNT:-10000}" MODES="${MODES:-plain}" NEWCONN="${NEWCONN-1}" SKIP_BUILD=1
WORK="$(mktemp -d /tmp/postern-ab.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
if [ -z "${EXTRA_CONFIG:-}" ]; then
    "$A" dkim keygen --domain example.com --selector ab --algorithm ed25519 --out "$WORK" 2>/dev/null |
        sed -n '/^\[\[dkim\]\]/,$p' >"$WORK/dkim.toml"
    export EXTRA_CONFIG="$WORK/dkim.toml"
fi
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
    for v in $order; do
        bin="$A"; [ "$v" = B ] && bin="$B"
        sync; sleep 3
        POSTERN="$bin" RESULT_FILE="$WORK/$v.jsonl" "$ROOT/bench/run.sh" >"$WORK/last.out" 2>&1 ||
            { cat "$WORK/last.out" >&2; exit 1; }
        tail -1 "$WORK/$v.jsonl" | ROUND="$r" V="$v" python3 -c '
import json, os, sys
r = json.load(sys.stdin)
print("round %s %s: %s us/msg, %.0f msg/s accepted, p99 %s ms" % (os.environ["ROUND"], os.environ["V"],
      r["postern_cpu_us"], r["accept_msgs_per_s"], r["p99_ms"]))'
    done
done
python3 - "$WORK/A.jsonl" "$WORK/B.jsonl" <<'PY'
import json, statistics, sys
a, b = ([json.loads(l) for l in open(f)] for f in sys.argv[1:3])
ca, cb = (statistics.median(x["postern_cpu_us"] for x in v) for v in (a, b))
ta, tb = (statistics.median(x["accept_msgs_per_s"] for x in v) for v in (a, b))
print(f"median CPU per message: A {ca:.0f} us, B {cb:.0f} us ({(cb - ca) / ca * 100:+.1f}%)")
print(f"median accepted msg/s:  A {ta:.0f}, B {tb:.0f} ({(tb - ta) / ta * 100:+.1f}%)")
PY
