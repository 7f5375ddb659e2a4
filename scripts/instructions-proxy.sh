#!/usr/bin/env bash
# User-space instructions per proxied request, counted by valgrind's callgrind (the count does not
# depend on the VM's speed, unlike the latency and CPU figures of scripts/bench-proxy.sh):
#
#   scripts/instructions-proxy.sh         N=3000 (environment); MESH_BENCH_BIN=DIR as in bench-proxy.sh
#
# - mesh-proxy: the one-hop plaintext path of bench-proxy.sh (the backend sidecar's inbound
#   listener in the `permissive` bench mesh, Cedar on every request, pooled connections to the app);
# - nginx: bench-proxy.sh's reverse-proxy configuration, with `master_process off` so that
#   callgrind sees the one process that proxies;
# - each in front of an nginx `return 200` backend on 127.0.0.1:18080; oha sends 100 requests to
#   warm up, the counters are zeroed (`callgrind_control -z`), oha sends N more at 500 rps over 16
#   keep-alive connections, and the counters are dumped: instructions / N, libc included.
# Results: $OUT (default target/instructions-proxy/) with the callgrind dumps, for
# `callgrind_annotate --inclusive=yes FILE`.
set -u -o pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-3000}
OUT=${OUT:-$ROOT/target/instructions-proxy}
W=$(mktemp -d /tmp/mesh-instr.XXXXXX)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
mkdir -p "$OUT"

need_tools nginx valgrind curl || exit 2
one_hop_setup || exit 2

count() { # NAME URL READY-URL COMMAND...: prints instructions per request
    local name=$1 url=$2 ready=$3 pid
    shift 3
    valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.$name" "$@" >"$W/$name.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 300); do curl -sf -o /dev/null "$ready" && break; sleep 0.2; done
    curl -sf -o /dev/null "$ready" || { echo "$name is not answering"; cat "$W/$name.log"; exit 2; }
    "$OHA" --no-tui -n 100 -c 16 --host backend --output-format quiet "$url" >/dev/null 2>&1
    callgrind_control -z "$pid" >/dev/null 2>&1
    "$OHA" --no-tui -n "$N" -c 16 -q 500 --host backend --output-format quiet "$url" >/dev/null 2>&1
    callgrind_control -d "$pid" >/dev/null 2>&1
    sleep 1
    kill "$pid"
    wait "$pid" 2>/dev/null
    awk -v n="$N" -v name="$name" '/^totals:/ { printf "%s: %.0f instructions per request (%d requests)\n", name, $2 / n, n }' \
        "$OUT/callgrind.$name.1"
}
{
    count mesh-proxy http://127.0.0.1:18111/ http://127.0.0.1:18113/ready "$BIN/mesh-proxy" \
        --artifact "$W/art/default.backend.json" --cert "$W/certs/default/backend/cert.pem" \
        --key "$W/certs/default/backend/key.pem" --trust-bundle "$W/certs/ca.pem" \
        --inbound-addr 127.0.0.1:18111 --workers 1 --reload-interval 0s
    count nginx http://127.0.0.1:18081/ http://127.0.0.1:18081/ "$NGINX" -c "$W/nginxproxy/nginx.conf" -p "$W/nginxproxy"
} | tee "$OUT/summary.txt"
