# Helpers the bench/ scripts share; sourced, not run.

free_port() {  # a TCP port free on 127.0.0.1 right now
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {  # until 127.0.0.1:$1 accepts; bounded: 30 s
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "port $1 never opened" >&2
    return 1
}

cpu_s() {  # user + system CPU seconds of process $1 so far; $2 (default "?") if it is gone
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo "${2:-?}"
}

bench_work() {  # sets WORK to a fresh directory named after $1 (under BENCH_TMP, default /tmp)
    # and, on exit, stops every process in PIDS and removes WORK (unless KEEP_WORK is set)
    WORK="$(mktemp -d "${BENCH_TMP:-/tmp}/postern-$1.XXXXXX")"
    PIDS=()
    trap bench_cleanup EXIT
}
bench_cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "${KEEP_WORK:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}

sink_upstream_toml() {  # [routes.default] → [upstreams.sink], kind "http", to the sink on port $1
    cat <<TOML
[routes.default]
upstreams = ["sink"]

[upstreams.sink]
kind = "http"
url = "https://127.0.0.1:$1/send"
ca_file = "$WORK/certs/ca.pem"
TOML
}
