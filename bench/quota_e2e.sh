#!/usr/bin/env bash
# Quota check cost end to end (issue 4): the same SMTP load as bench/run.sh
# (COUNT messages of SIZE bytes over SESSIONS sessions, plaintext mode by
# default), with the load generator's MAIL FROM and From cycling through
# SENDERS distinct addresses, once with a [quota] section that limits every
# key kind (credential, sender, domain, ip; per minute, hour and day;
# messages and recipients; far above the load, so every check runs in full
# and nothing is refused) and once without any [quota] section. The two
# variants run REPEAT times, interleaved and alternating which goes first,
# each after a sync and SETTLE seconds of quiet, all with one copy of the
# binary.
#
# Prints every run, then per variant the median end-to-end throughput, its
# spread, and postern's CPU time per message (the steadier measure on a
# shared machine), the quota cost as the difference in CPU per message and
# as a share of the unquota'd CPU per message, the quota keys saved in
# state_dir/quota-state.json at shutdown, and the 451 refusals (must be 0).
#
# Usage: bench/quota_e2e.sh   (env: SENDERS=10000 REPEAT=3 SETTLE=5, and as for bench/run.sh:
#                              COUNT SESSIONS SIZE MODES SKIP_BUILD POSTERN=path/to/binary)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SENDERS="${SENDERS:-10000}"
REPEAT="${REPEAT:-3}"
SETTLE="${SETTLE:-5}"
MODES="${MODES:-plain}"

if [ -z "${SKIP_BUILD:-}" ]; then
    echo "== building (release)" >&2
    (cd "$ROOT" && cargo build --release --quiet)
fi

TMP="$(mktemp -d /tmp/postern-bench-quota.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
RESULTS="$TMP/results.jsonl"
# One copy of the binary for every run: a rebuild by someone else during the
# benchmark must not make the variants run different code.
cp "${POSTERN:-$ROOT/target/release/postern}" "$TMP/postern"

for r in $(seq 1 "$REPEAT"); do
    # Alternate the order (none quota, quota none, ...) so neither variant
    # always runs first or always right after the other.
    if [ $((r % 2)) -eq 1 ]; then order="none quota"; else order="quota none"; fi
    for v in $order; do
        sync
        sleep "$SETTLE"
        echo "=================== quota=$v senders=$SENDERS (round $r of $REPEAT) ==================="
        q=""
        if [ "$v" = quota ]; then q=1; fi
        SKIP_BUILD=1 POSTERN="$TMP/postern" QUOTA="$q" SENDERS="$SENDERS" MODES="$MODES" \
            RESULT_FILE="$RESULTS" "$ROOT/bench/run.sh"
    done
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print()
print("=================== summary: quota checks on every message, end to end ===================")
for mode in dict.fromkeys(r["mode"] for r in rows):
    by = {v: [r for r in rows if r["mode"] == mode and r["quota"] == (v == "quota")]
          for v in ("none", "quota")}
    med, cpu = {}, {}
    for v, runs in by.items():
        ok = [r["e2e_msgs_per_s"] for r in runs if r.get("e2e_msgs_per_s")]
        if len(ok) < len(runs):
            print(f"{mode:6} {v:6} INCOMPLETE: {len(runs) - len(ok)} of {len(runs)} runs did not deliver every message")
        if not ok:
            continue
        med[v] = statistics.median(ok)
        cpus = [r["postern_cpu_us"] for r in runs if "postern_cpu_us" in r]
        cpu[v] = statistics.median(cpus) if cpus else None
        sink = [r["sink_cpu_us"] for r in runs if "sink_cpu_us" in r]
        refused = sum(r.get("refused_451", 0) for r in runs)
        keys = [r.get("quota_keys", 0) for r in runs]
        dims = runs[-1].get("quota_keys_by_dim", {})
        print(f"{mode:6} {v:6} median {med[v]:6.0f} msg/s  runs {', '.join(f'{x:.0f}' for x in ok)}  "
              f"spread {(max(ok) - min(ok)) / med[v] * 100:.0f}%")
        print(f"{'':14}postern CPU per message: median {cpu[v]:.0f} us, runs {', '.join(f'{x:.0f}' for x in cpus)}; "
              f"sink median {statistics.median(sink):.0f} us")
        print(f"{'':14}451 refusals (all runs): {refused}; quota keys saved per run: {keys} "
              f"(last run by kind: {dims})")
    if "none" in med and "quota" in med:
        n, q = by["none"], by["quota"]
        paired = [(b["e2e_msgs_per_s"] / a["e2e_msgs_per_s"] - 1) * 100 for a, b in zip(n, q)
                  if a.get("e2e_msgs_per_s") and b.get("e2e_msgs_per_s")]
        print(f"{mode:6} throughput with quota vs without: {(med['quota'] / med['none'] - 1) * 100:+.1f}% (medians); "
              f"paired by round: median {statistics.median(paired):+.1f}% "
              f"(rounds {', '.join(f'{p:+.0f}%' for p in paired)})")
        if cpu.get("none") and cpu.get("quota"):
            d = cpu["quota"] - cpu["none"]
            pd = [b["postern_cpu_us"] - a["postern_cpu_us"] for a, b in zip(n, q)
                  if "postern_cpu_us" in a and "postern_cpu_us" in b]
            print(f"{mode:6} quota cost in postern CPU: {d:+.1f} us/message (medians) = "
                  f"{d / cpu['none'] * 100:+.1f}% of {cpu['none']:.0f} us/message; paired by round: "
                  f"{', '.join(f'{x:+.0f}' for x in pd)} us")
PY
