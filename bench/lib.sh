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
