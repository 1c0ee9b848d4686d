#!/usr/bin/env bash
# What attacks cost a well-behaved client (issue 14: measured here, not
# asserted in tests). postern runs on its defaults for [abuse] and
# [server] limits, with an HTTPS upstream (bench/loadgen's sink). A good
# client on 127.0.0.1 (a `networks` credential) sends N messages one after
# another, each on a new connection (smtplib), first with no attack, then
# during each attack; per phase it prints the p50/p99/max of the whole
# transaction (connect to 221) and of the final dot to 250, and any message
# that did not get 250.
#   flood      an untrusted address (127.0.0.2) connects and closes as fast as
#              4 threads can (421 once past connections_per_ip_per_minute)
#   slowloris  300 connections from 127.0.0.2 each sending one byte a second
#   header     8 sessions of a trusted but abusive app (127.0.0.3) each
#              streaming an endless header (554 5.6.0 at the header limit)
#   rcpt       8 sessions from 127.0.0.3 each sending 10,000 RCPT commands
#
# Usage: bench/attack_latency.sh   (env: N=200 PHASES="none flood slowloris header rcpt" SKIP_BUILD=)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/bench/lib.sh"
N="${N:-200}"
PHASES="${PHASES:-none flood slowloris header rcpt}"
if [ -z "${SKIP_BUILD:-}" ]; then (cd "$ROOT" && cargo build --release --quiet); fi
(cd "$ROOT/bench/loadgen" && cargo build --release --quiet)
POSTERN="${POSTERN:-$ROOT/target/release/postern}"
LG="$ROOT/bench/loadgen/target/release"
bench_work attack
ulimit -n "$(ulimit -Hn)"

"$LG/certs" --out "$WORK/certs"
SINK="$(free_port)"; SMTP="$(free_port)"
"$LG/sink" --certs "$WORK/certs" --port "$SINK" --expect 100000000 --api http \
    --done-file "$WORK/sink-done.json" 2>"$WORK/sink.log" &
PIDS+=("$!")
wait_port "$SINK"
mkdir -p "$WORK/state"
cat >"$WORK/postern.toml" <<TOML
[server]
hostname = "bench.test"
state_dir = "$WORK/state"

[tls]
certificate = "$WORK/certs/server.pem"
private_key = "$WORK/certs/server.key"

[[listeners]]
address = "127.0.0.1:$SMTP"
tls = "none"

[log]
level = "warn"

[credentials.good]
networks = ["127.0.0.1/32"]
allowed_senders = ["*@example.com"]

[credentials.abusive]
networks = ["127.0.0.3/32"]
allowed_senders = ["*@example.com"]

TOML
sink_upstream_toml "$SINK" >>"$WORK/postern.toml"
"$POSTERN" run --config "$WORK/postern.toml" 2>"$WORK/postern.log" &
PIDS+=("$!")
wait_port "$SMTP" || { cat "$WORK/postern.log" >&2; exit 1; }

python3 - "$SMTP" "$N" $PHASES <<'PY'
import smtplib, socket, statistics, sys, threading, time
port, n, phases = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
MSG = ("From: good@example.com\r\nTo: rcpt@example.net\r\nSubject: latency\r\n\r\n" + "x" * 2000 + "\r\n").encode()

def conn(src):
    s = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(src, 0))
    return s

def flood(stop):
    while not stop.is_set():
        try:
            s = conn("127.0.0.2"); s.recv(100); s.close()
        except OSError:
            pass

def slowloris(stop):
    socks = []
    for _ in range(300):
        try:
            socks.append(conn("127.0.0.2"))
        except OSError:
            pass
    while not stop.is_set():
        for s in list(socks):
            try:
                s.send(b"E")
            except OSError:
                socks.remove(s)
        time.sleep(1)
    for s in socks:
        s.close()

def session(src):
    s = conn(src)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"EHLO attacker.test\r\n")
    while True:
        l = f.readline()
        if not l or l[3:4] == b" ":
            break
    return s, f

def header(stop):
    while not stop.is_set():
        try:
            s, f = session("127.0.0.3")
            s.sendall(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
            for _ in range(3):
                f.readline()
            line = b"X-Endless: " + b"y" * 900 + b"\r\n"
            while not stop.is_set():
                s.sendall(line * 64)
        except OSError:
            pass

def rcpt(stop):
    while not stop.is_set():
        try:
            s, f = session("127.0.0.3")
            s.sendall(b"MAIL FROM:<a@example.com>\r\n")
            f.readline()
            for i in range(10000):
                if stop.is_set():
                    break
                s.sendall(b"RCPT TO:<r%d@example.net>\r\n" % i)
                if not f.readline():
                    break
            s.close()
        except OSError:
            pass

ATTACKS = {"none": (None, 0), "flood": (flood, 4), "slowloris": (slowloris, 1), "header": (header, 8), "rcpt": (rcpt, 8)}

def good():
    total, dot, failed = [], [], []
    for i in range(n):
        t0 = time.perf_counter()
        try:
            c = smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=("127.0.0.1", 0))
            c.ehlo("good.test")
            c.mail("good@example.com")
            c.rcpt("rcpt@example.net")
            code, _ = c.docmd("DATA")
            assert code == 354, code
            c.send(MSG + b".\r\n")
            t1 = time.perf_counter()
            code, msg = c.getreply()
            t2 = time.perf_counter()
            c.quit()
            if code != 250:
                failed.append(f"{code} {msg.decode()}")
            dot.append(t2 - t1)
        except Exception as e:
            failed.append(repr(e))
        total.append(time.perf_counter() - t0)
    return total, dot, failed

def q(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] * 1000 if v else float("nan")

print("| attack | messages with 250 | transaction p50 / p99 / max ms | dot→250 p50 / p99 ms |")
print("|---|---|---|---|")
for ph in phases:
    fn, threads = ATTACKS[ph]
    stop = threading.Event()
    ts = [threading.Thread(target=fn, args=(stop,), daemon=True) for _ in range(threads)] if fn else []
    for t in ts:
        t.start()
    time.sleep(3 if fn else 0)
    total, dot, failed = good()
    stop.set()
    for t in ts:
        t.join(timeout=40)
    print(f"| {ph} | {n - len(failed)}/{n} | {q(total, .5):.1f} / {q(total, .99):.1f} / {max(total) * 1000:.1f} | {q(dot, .5):.1f} / {q(dot, .99):.1f} |")
    if failed:
        print(f"  not 250: {sorted(set(failed))[:5]}", file=sys.stderr)
    time.sleep(2)
PY
