#!/usr/bin/env bash
# System calls per proxied request, counted by `strace -c` (a count, not a time: the counts do
# not depend on the VM's speed, only strace's own overhead does):
#
#   scripts/syscalls-proxy.sh         N=3000 RATE=1000 (environment); MESH_BENCH_BIN=DIR as in bench-proxy.sh
#
# - mesh-proxy: the one-hop plaintext path of bench-proxy.sh (the backend sidecar's inbound
#   listener in the `permissive` bench mesh, pooled connections to the app);
# - nginx: bench-proxy.sh's reverse-proxy configuration (`master_process off`, one process);
# - l4-floor: haproxy in `mode tcp`, bench-proxy.sh's floor;
# - each in front of an nginx `return 200` backend on 127.0.0.1:18080; oha sends 100 requests to
#   warm up, strace attaches to the proxy (every thread), oha sends N more at RATE over 16
#   keep-alive connections, strace detaches and prints its table: calls / N per system call.
# Results: $OUT (default target/syscalls-proxy/) strace tables and summary.txt.
set -u -o pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-3000}
RATE=${RATE:-1000}
OUT=${OUT:-$ROOT/target/syscalls-proxy}
W=$(mktemp -d /tmp/mesh-sys.XXXXXX)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
mkdir -p "$OUT"

need_tools nginx haproxy strace curl || exit 2
one_hop_setup || exit 2
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
cat >"$W/haproxy-tcp.cfg" <<EOF
global
    nbthread 1
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
frontend f
    bind 127.0.0.1:18083
    default_backend b
backend b
    server s1 127.0.0.1:18080
EOF

count() { # NAME URL READY-URL COMMAND...: prints system calls per request
    local name=$1 url=$2 ready=$3 pid spid
    shift 3
    "$@" >"$W/$name.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 100); do curl -sf -o /dev/null "$ready" && break; sleep 0.1; done
    curl -sf -o /dev/null "$ready" || { echo "$name is not answering"; cat "$W/$name.log"; exit 2; }
    "$OHA" --no-tui -n 100 -c 16 --host backend --output-format quiet "$url" >/dev/null 2>&1
    strace -f -c -o "$OUT/strace.$name" -p "$pid" 2>/dev/null &
    spid=$!
    sleep 1
    "$OHA" --no-tui -n "$N" -c 16 -q "$RATE" --host backend --output-format quiet "$url" >/dev/null 2>&1
    kill -INT "$spid"
    wait "$spid" 2>/dev/null
    kill "$pid"
    wait "$pid" 2>/dev/null
    awk -v n="$N" -v name="$name" '
        $NF ~ /^[a-z_0-9]+$/ && $NF != "total" && $NF != "syscall" {
            calls = $4; per = calls / n
            if (per >= 0.05) { line = line sprintf(" %s %.2f", $NF, per) }
            total += calls
        }
        END { printf "%s: %.2f system calls per request (%d requests):%s\n", name, total / n, n, line }' \
        "$OUT/strace.$name"
}
{
    count mesh-proxy http://127.0.0.1:18111/ http://127.0.0.1:18113/ready "$BIN/mesh-proxy" \
        --artifact "$W/art/default.backend.json" --cert "$W/certs/default/backend/cert.pem" \
        --key "$W/certs/default/backend/key.pem" --trust-bundle "$W/certs/ca.pem" \
        --inbound-addr 127.0.0.1:18111 --workers 1 --reload-interval 0s
    count nginx http://127.0.0.1:18081/ http://127.0.0.1:18081/ "$NGINX" -c "$W/nginxproxy/nginx.conf" -p "$W/nginxproxy"
    count l4-floor http://127.0.0.1:18083/ http://127.0.0.1:18083/ "$HAPROXY" -f "$W/haproxy-tcp.cfg" -db
} | tee "$OUT/summary.txt"
