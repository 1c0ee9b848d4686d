#!/usr/bin/env bash
# Runs the cargo-fuzz targets on the stable toolchain.
#
#   fuzz/run.sh smoke [TARGET...]   30 seconds per target (the default)
#   fuzz/run.sh long  [TARGET...]   10 million executions per target
#   fuzz/run.sh list                the targets
#
# Only stable rustc exists here: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass the
# -Z flags it needs (sanitizer coverage), and the sanitizer is AddressSanitizer
# unless FUZZ_SANITIZER says otherwise (`none` is faster; postern has no
# unsafe code in the fuzzed paths). Seeds live in fuzz/corpus/TARGET (in git,
# replayed by `cargo test`); what the fuzzer finds goes to fuzz/work/TARGET,
# crashes (and inputs that take longer than FUZZ_TIMEOUT seconds, default 10:
# a hang is a finding) to fuzz/artifacts/TARGET. Copy a crash into fuzz/corpus/TARGET once
# fixed, so the test suite keeps checking it.
set -euo pipefail
cd "$(dirname "$0")"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
mode="${1:-smoke}"; shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(ls fuzz_targets | sed 's/\.rs$//')
fi
case "$mode" in
    smoke) limit=(-max_total_time=30) ;;
    long) limit=(-runs=10000000) ;;
    list) printf '%s\n' "${targets[@]}"; exit 0 ;;
    *) echo "usage: fuzz/run.sh smoke|long|list [TARGET...]" >&2; exit 2 ;;
esac
export RUSTC_BOOTSTRAP=1
sanitizer="${FUZZ_SANITIZER:-address}"
failed=()
for t in "${targets[@]}"; do
    mkdir -p "work/$t"
    dict=(); [ -f "$t.dict" ] && dict=(-dict="$t.dict")
    echo "==> $t ($mode, sanitizer $sanitizer)"
    cargo fuzz run --sanitizer "$sanitizer" "$t" "work/$t" "corpus/$t" -- \
        "${limit[@]}" "${dict[@]}" -max_len=65536 -timeout="${FUZZ_TIMEOUT:-10}" -print_final_stats=1 >"work/$t.log" 2>&1 || true
    grep -E '^(#[0-9]+[[:space:]]+DONE|==[0-9]+==|stat::number_of_executed_units|artifact_prefix|Test unit written|Done [0-9]+ runs)' "work/$t.log" || true
    grep -q '^Done [0-9]* runs' "work/$t.log" || failed+=("$t")
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "stopped early (a crash or an error; see fuzz/work/TARGET.log and fuzz/artifacts/): ${failed[*]}" >&2
    exit 1
fi
