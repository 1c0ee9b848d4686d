#!/usr/bin/env bash
# Upstream kind cost: the same SMTP load as bench/run.sh (COUNT messages of
# SIZE bytes over SESSIONS sessions, plaintext mode by default) delivered
# through postern's `http`, `ses` and `sendgrid` kinds to the local HTTPS
# sink playing each API (SES v2 SendEmail: 200 + JSON MessageId; SendGrid
# v3 mail/send: 202 + X-Message-Id). The kinds run REPEAT times, interleaved
# and rotated (http ses sendgrid, ses sendgrid http, sendgrid http ses, ...)
# with a sync and SETTLE seconds of quiet before each run, so background
# load and disk write-back hit them alike. Prints every run, then per kind
# the median end-to-end throughput, the spread, the difference from `http`
# (of the medians, and paired by round), postern's CPU time per message and
# the HTTP versions and connections the sink saw (every request should be
# HTTP/2, over connections that are reused: a few per run, not one per
# message).
#
# Usage: bench/upstreams.sh   (env as for bench/run.sh: COUNT SESSIONS SIZE MODES SKIP_BUILD;
#                              KINDS="http ses sendgrid" REPEAT=3 SETTLE=5 POSTERN=path/to/binary)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KINDS="${KINDS:-http ses sendgrid}"
REPEAT="${REPEAT:-3}"
SETTLE="${SETTLE:-5}"       # seconds of quiet before each run
MODES="${MODES:-plain}"

if [ -z "${SKIP_BUILD:-}" ]; then
    echo "== building (release)" >&2
    (cd "$ROOT" && cargo build --release --quiet)
fi

TMP="$(mktemp -d /tmp/postern-bench-upstreams.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
RESULTS="$TMP/results.jsonl"
# One copy of the binary for every run, so a rebuild by someone else during
# the benchmark cannot make the kinds run different code.
cp "${POSTERN:-$ROOT/target/release/postern}" "$TMP/postern"

read -r -a kinds <<<"$KINDS"
n=${#kinds[@]}
for r in $(seq 1 "$REPEAT"); do
    # Rotate the order each round (http ses sendgrid, ses sendgrid http, ...)
    # so no kind always runs first, or always right after another run.
    for i in $(seq 0 $((n - 1))); do
        k="${kinds[$(((i + r - 1) % n))]}"
        # Start every run from a similar state: without a pause the first
        # run of a series came out fastest, and a run that starts while the
        # previous one's spool files are still being written back shares
        # the disk with them.
        sync
        sleep "$SETTLE"
        echo "=================== kind=$k (round $r of $REPEAT) ==================="
        SKIP_BUILD=1 POSTERN="$TMP/postern" KIND="$k" MODES="$MODES" RESULT_FILE="$RESULTS" \
            "$ROOT/bench/run.sh"
    done
done

python3 - "$RESULTS" "$KINDS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
kinds = sys.argv[2].split()
print()
print("=================== summary: end-to-end msg/s (accepted over SMTP and received by the sink) ===")
for mode in dict.fromkeys(r["mode"] for r in rows):
    med = {}
    for k in kinds:
        runs = [r for r in rows if r["kind"] == k and r["mode"] == mode]
        ok = [r["e2e_msgs_per_s"] for r in runs if r.get("e2e_msgs_per_s")]
        if len(ok) < len(runs) or not ok:
            print(f"{mode:9} {k:9} INCOMPLETE: {len(runs) - len(ok)} of {len(runs)} runs did not deliver every message")
        if not ok:
            continue
        med[k] = statistics.median(ok)
        spread = (max(ok) - min(ok)) / med[k] * 100
        h2 = sum(r.get("h2_requests", 0) for r in runs)
        h1 = sum(r.get("h1_requests", 0) for r in runs)
        conns = [r.get("h2_connections", 0) + r.get("h1_connections", 0) for r in runs]
        vs = ""
        if k != "http" and "http" in med:
            # Also paired by round (run i of this kind against run i of http,
            # a minute apart at most), which cancels slow drifts in the
            # machine's background load.
            base = [r.get("e2e_msgs_per_s") for r in rows if r["kind"] == "http" and r["mode"] == mode]
            mine = [r.get("e2e_msgs_per_s") for r in runs]
            paired = [(m / h - 1) * 100 for m, h in zip(mine, base) if m and h]
            vs = f"  {(med[k] / med['http'] - 1) * 100:+.1f}% vs http"
            if paired:
                vs += f" (paired by round: median {statistics.median(paired):+.1f}%, " \
                      f"rounds {', '.join(f'{p:+.0f}%' for p in paired)})"
        print(f"{mode:9} {k:9} median {med[k]:7.0f}  runs {', '.join(f'{v:.0f}' for v in ok)}"
              f"  spread {spread:.0f}%{vs}")
        cpu = [r["postern_cpu_us"] for r in runs if "postern_cpu_us" in r]
        cpu_text = f"postern CPU {statistics.median(cpu):.0f} us/message (median); " if cpu else ""
        print(f"{'':19} {cpu_text}sink saw {h2} HTTP/2 + {h1} HTTP/1.1 requests; "
              f"connections per run: {conns}; acceptance p50 "
              f"{statistics.median(r['p50_ms'] for r in runs):.1f} ms")
PY
