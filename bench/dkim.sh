#!/usr/bin/env bash
# DKIM signing cost: runs bench/run.sh three times with the same load, first
# without [[dkim]] keys (unsigned), then with one Ed25519 key, then with one
# RSA-2048 key for the load generator's From domain (example.com), and prints
# the three results one after another. Keys come from `postern dkim keygen`.
#
# Usage: bench/dkim.sh   (env as for bench/run.sh: COUNT SESSIONS SIZE MODES;
#                         VARIANTS="none ed25519 rsa" picks the runs, in order;
#                         repeat names to interleave repetitions, e.g. "none ed25519 none ed25519")
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VARIANTS="${VARIANTS:-none ed25519 rsa}"

echo "== building (release)" >&2
(cd "$ROOT" && cargo build --release --quiet)
POSTERN="$ROOT/target/release/postern"

KEYS="$(mktemp -d /tmp/postern-bench-dkim.XXXXXX)"
trap 'rm -rf "$KEYS"' EXIT

i=0
for v in $VARIANTS; do
    i=$((i + 1))
    extra="$KEYS/$i-$v.toml"
    case "$v" in
        none) : >"$extra" ;;
        ed25519 | rsa)
            "$POSTERN" dkim keygen --domain example.com --selector "bench-$v-$i" \
                --algorithm "$v" --out "$KEYS" 2>/dev/null |
                sed -n '/^\[\[dkim\]\]/,$p' >"$extra"
            ;;
        *) echo "unknown variant $v (none | ed25519 | rsa)" >&2; exit 2 ;;
    esac
    echo "=================== DKIM: $v (run $i) ==================="
    SKIP_BUILD=1 EXTRA_CONFIG="$extra" "$ROOT/bench/run.sh"
done
