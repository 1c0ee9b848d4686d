#!/usr/bin/env bash
# The Postfix reference for bench/compare.sh: a stock Postfix relay on
# loopback (smtpd → durable queue → smtp client → smtp-sink), no DKIM, no
# TLS, driven by the same load generator postern gets (bench/loadgen, a new
# connection per message unless NEWCONN is empty). Prints the load
# generator's key=value lines plus postfix_cpu_s (user + system CPU of every
# Postfix process, from the cgroup-free sum over /proc at the end) and
# sink_received.
#
# Usage: bench/postfix_ref.sh   (env: COUNT=20000 SESSIONS=20 SIZE=4096 NEWCONN=1)
# Needs root (Postfix's master refuses otherwise) and the Debian postfix package.
# The instance is private: its own config and queue directories under a
# temporary directory; the system's Postfix is never touched.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/bench/lib.sh"
COUNT="${COUNT:-20000}"
SESSIONS="${SESSIONS:-20}"
SIZE="${SIZE:-4096}"
NEWCONN="${NEWCONN-1}"
LG="$ROOT/bench/loadgen/target/release"
[ -x "$LG/loadgen" ] || (cd "$ROOT/bench/loadgen" && cargo build --release --quiet)

WORK="$(mktemp -d /tmp/postern-bench-postfix.XXXXXX)"
chmod 755 "$WORK"
MASTER_PID=""
SINK_PID=""
cleanup() {
    [ -n "$MASTER_PID" ] && kill -TERM -- "-$MASTER_PID" 2>/dev/null
    [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null
    wait 2>/dev/null || true
    [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

SMTP_PORT="$(free_port)"
SINK_PORT="$(free_port)"
mkdir -p "$WORK/etc" "$WORK/queue"
"$LG/certs" --out "$WORK/certs"

cat >"$WORK/etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $WORK/queue
data_directory = $WORK/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $WORK/maillog
maillog_file_prefixes = $WORK
myhostname = postfix.bench.test
mydomain = bench.test
mydestination =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$SINK_PORT
smtpd_relay_restrictions = permit_mynetworks, reject
# No DNS lookups of the client and no per-client rate limits: the load
# generator is one address opening thousands of connections.
smtpd_peername_lookup = no
smtpd_client_connection_rate_limit = 0
default_process_limit = 200
CF
cat >"$WORK/etc/master.cf" <<CF
127.0.0.1:$SMTP_PORT inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CF
/usr/sbin/postfix -c "$WORK/etc" check

# smtp-sink: accepts everything, keeps nothing (-c counts sessions).
/usr/sbin/smtp-sink -u postfix -c "127.0.0.1:$SINK_PORT" 200 >"$WORK/sink.out" 2>&1 &
SINK_PID=$!
setsid /usr/lib/postfix/sbin/master -c "$WORK/etc" </dev/null >/dev/null 2>&1 &
MASTER_PID=$!
for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT") 2>/dev/null && break
    sleep 0.1
done

postfix_cpu() {  # user + system seconds of every process in the master's session
    local hz total=0 pid
    hz="$(getconf CLK_TCK)"
    for pid in $(ps -o pid= -s "$MASTER_PID"); do
        read -r u s < <(awk '{print $14, $15}' "/proc/$pid/stat" 2>/dev/null || echo "0 0")
        total=$((total + u + s))
    done
    # Children that exited (smtpd, cleanup after max_idle) are in the master's cutime/cstime.
    read -r cu cs < <(awk '{print $16, $17}' "/proc/$MASTER_PID/stat")
    total=$((total + cu + cs))
    awk -v t="$total" -v hz="$hz" 'BEGIN { printf "%.3f", t / hz }'
}

before="$(postfix_cpu)"
"$LG/loadgen" --mode plain --certs "$WORK/certs" --port "$SMTP_PORT" \
    --sessions "$SESSIONS" --count "$COUNT" --size "$SIZE" ${NEWCONN:+--new-connection 1}
after="$(postfix_cpu)"
echo "postfix_cpu_s=$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.3f", a - b }')"
# Let the queue drain into smtp-sink (bounded: 120 s), then report what is left.
for _ in $(seq 1 "${DRAIN_TENTHS:-1200}"); do
    left="$(find "$WORK/queue/active" "$WORK/queue/incoming" "$WORK/queue/deferred" -type f 2>/dev/null | wc -l)"
    [ "$left" -eq 0 ] && break
    sleep 0.1
done
echo "postfix_queue_left=$left"
