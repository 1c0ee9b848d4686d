#!/usr/bin/env bash
# The cost curve of row (a) of bench/compare.sh (new connection per message,
# plaintext `networks` credential, Ed25519 DKIM, fsync'd spool, HTTPS/2
# upstream): throughput and postern CPU per message at several numbers of
# concurrent sessions (4 KiB messages), then at several message sizes
# (20 sessions). Prints one markdown table per curve.
#
# Usage: bench/curves.sh   (env: SESSIONS_LIST="1 5 20 100 500" SIZES="1024 4096 102400 5242880"
#                                COUNT=5000, fewer for the large sizes: see size_count)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SESSIONS_LIST="${SESSIONS_LIST:-1 5 20 100 500}"
SIZES="${SIZES:-1024 4096 102400 5242880}"
BASE_COUNT="${COUNT:-5000}"
(cd "$ROOT" && cargo build --release --quiet)
WORK="$(mktemp -d /tmp/postern-curves.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
"$ROOT/target/release/postern" dkim keygen --domain example.com --selector curve --algorithm ed25519 \
    --out "$WORK" 2>/dev/null | sed -n '/^\[\[dkim\]\]/,$p' >"$WORK/dkim.toml"
size_count() {  # keep each run to a few seconds and the spool to a few hundred MB
    if [ "$1" -ge 1048576 ]; then echo $((BASE_COUNT / 25)); elif [ "$1" -ge 65536 ]; then echo $((BASE_COUNT / 2)); else echo "$BASE_COUNT"; fi
}
one() {  # label, then env for bench/run.sh
    local label="$1"; shift
    env "$@" MODES=plain NEWCONN=1 SKIP_BUILD=1 EXTRA_CONFIG="$WORK/dkim.toml" \
        RESULT_FILE="$WORK/r.jsonl" "$ROOT/bench/run.sh" >"$WORK/last.out" 2>&1 ||
        { cat "$WORK/last.out" >&2; return 1; }
    tail -1 "$WORK/r.jsonl" | LABEL="$label" python3 -c '
import json, os, sys
r = json.load(sys.stdin)
print("| %s | %s | %.0f | %s | %s | %s |" % (os.environ["LABEL"], r["accepted"], r["accept_msgs_per_s"],
      r.get("e2e_msgs_per_s") or "-", r["p99_ms"], r["postern_cpu_us"]))'
}
echo "| sessions (4 KiB) | messages | accepted msg/s | end-to-end msg/s | p99 accept ms | postern CPU µs/msg |"
echo "|---|---|---|---|---|---|"
for s in $SESSIONS_LIST; do one "$s" SESSIONS="$s" COUNT="$BASE_COUNT" SIZE=4096; done
echo
echo "| size (20 sessions) | messages | accepted msg/s | end-to-end msg/s | p99 accept ms | postern CPU µs/msg |"
echo "|---|---|---|---|---|---|"
for z in $SIZES; do one "$z B" SESSIONS=20 COUNT="$(size_count "$z")" SIZE="$z"; done
