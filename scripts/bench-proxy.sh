#!/usr/bin/env bash
# mesh-proxy against nginx and haproxy, the method of shared/REFERENCE.md ("Proxy cost: measured").
#
#   scripts/bench-proxy.sh            DURATION=5s ROUNDS=3 RATES="1000 5000" (environment overrides;
#                                     TARGETS="mesh nginx" measures a subset, direct always)
#
# - backend: nginx `return 200` (Debian package) on 127.0.0.1:18080;
# - targets, each routing every request to that backend, each with one worker / thread:
#     direct      oha -> backend
#     nginx       reverse proxy, upstream keepalive + proxy_http_version 1.1 + empty Connection
#     haproxy     `http-reuse always`, nbthread 1
#     l4-floor    haproxy in `mode tcp` (nbthread 1): relays bytes and reads no HTTP at all, so it
#                 makes the same socket calls per request as an HTTP proxy with pooled
#                 connections and next to no work in user space; its added latency is what the
#                 machine's loopback and scheduler cost any proxy, a floor, not a competitor
#     mesh        one mesh-proxy, plaintext: the backend's sidecar inbound listener in a
#                 `permissive` mesh (plaintext accepted), Cedar evaluated on every request
#     nginx-mtls  a pair of nginx: client side plaintext on 127.0.0.1:18131 -> `proxy_pass https://`
#                 (upstream keepalive 64, HTTP/1.1, empty Connection, TLS 1.3 only, the client
#                 sidecar's certificate, server name verified, session reuse) -> server side
#                 127.0.0.1:18132 (`ssl_verify_client on` against the mesh CA) -> backend
#     haproxy-mtls a pair of haproxy (nbthread 1, `http-reuse always` each): client side plaintext
#                 on 127.0.0.1:18141 -> `server ... ssl crt` (client sidecar's certificate, TLS 1.3
#                 only, `verify required` + `verifyhost`) -> server side 127.0.0.1:18142 (`bind ...
#                 ssl crt ... verify required`, TLS 1.3 only) -> backend
#     mesh-mtls   a pair: client sidecar outbound (routes with a 10,001-route artifact) ->
#                 mutual TLS 1.3 -> backend sidecar inbound -> backend
#   the two pairs use the certificates `meshc certs` makes for the mesh-mtls pair (client sidecar's
#   to connect, backend sidecar's to serve, ca.pem on both sides), so the three pairs do the same
#   cryptography; nginx and haproxy are the fair comparison for mesh-mtls, the single plaintext
#   nginx and haproxy for mesh;
# - proxies and backend pinned to CPU 0, the load generator to CPU 1;
# - oha -z DURATION -q RATE --latency-correction -c 16 -w --worker-threads 1 --output-format json,
#   and --db-url: every request's latency (corrected for coordinated omission) lands in SQLite;
# - added latency, two ways: per round (target minus direct in the same round, median over
#   rounds), and pooled (percentiles of every request of every round, target minus direct); the
#   VM's noise comes in bursts that can make one round's direct p99 larger than a proxy's, and
#   pooling weighs each burst by the requests it hit instead of letting it decide a whole round;
# - CPU per request from the proxies' CPU time (sum over threads of /proc/PID/task/*/schedstat,
#   nanoseconds; /proc/PID/stat's ticks are too coarse for 5 s runs) before and after each run,
#   with the kernel's share of it from /proc/PID/task/*/stat (user and system ticks);
# - peak RSS = VmHWM at the end;
# - full TLS 1.3 handshakes: `openssl s_time -new -tls1_3` (client on CPU 1) against the backend
#   sidecar's inbound, with the sidecar's CPU per handshake -> handshakes per second of one core.
# - CPU per request and peak RSS of a pair: both processes (for nginx, each master's worker);
# - the summary ends with the ratios of issue 5's goal (added p99 at most 0.7 x nginx's and
#   haproxy's): mesh against the one-proxy nginx and haproxy, mesh-mtls against the two pairs.
# Results: $OUT (default target/bench-proxy/) results.tsv (one line per run), summary.md.
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
RATES=${RATES:-"1000 5000"}
OUT=${OUT:-$ROOT/target/bench-proxy}
W=$(mktemp -d /tmp/mesh-bench.XXXXXX)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
mkdir -p "$OUT"
PCPU=0
LCPU=1
[ "$(nproc)" -ge 2 ] || LCPU=0

# ---------------------------------------------------------------- tools
need_tools nginx haproxy openssl curl || exit 2
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
if ! [ -x "$OHA" ]; then
    echo "installing oha (cargo install oha --locked; takes minutes)"
    cargo install oha --locked -q || exit 2
    OHA="$HOME/.cargo/bin/oha"
fi
# The sidecar is measured as it ships: built with the `sidecar` profile (fat LTO; see Cargo.toml).
# MESH_BENCH_BIN: use a prebuilt mesh-proxy from that directory (no build); MESH_BENCH_MESHC: a
# prebuilt meshc (default: the one beside mesh-proxy, else target/release/meshc).
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${MESH_BENCH_BIN:-$TARGET/sidecar}
MESHC=${MESH_BENCH_MESHC:-$BIN/meshc}
[ -x "$MESHC" ] || MESHC="$TARGET/release/meshc"
if [ -n "${MESH_BENCH_BIN:-}" ]; then
    :
elif echo "building mesh-proxy (sidecar profile) and meshc (release)" && ! (cd "$ROOT" && cargo build -q --profile sidecar -p mesh-proxy); then
    exit 2
# meshc only writes the artifact: its profile does not matter; use a debug one if release fails
elif ! (cd "$ROOT" && cargo build -q --release -p meshc); then
    (cd "$ROOT" && cargo build -q -p meshc) || [ -x "$TARGET/debug/meshc" ] || exit 2
    MESHC="$TARGET/debug/meshc"
fi

# ---------------------------------------------------------------- the bench mesh: 10,001 routes
bash "$ROOT/scripts/bench-mesh.sh" "$MESHC" "$W" || exit 2
ROUTES=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["body"]; print(sum(len((p.get("routes") or {}).get("entries", [])) for x in d["destinations"] for p in x["ports"]))' "$W/art/default.client.json" 2>/dev/null || echo "?")

# ---------------------------------------------------------------- servers, pinned to CPU 0
ngx_conf "$W/backend" "server { listen 127.0.0.1:18080 backlog=4096; location / { return 200 'ok\n'; } }"
ngx_conf "$W/nginxproxy" "upstream b { server 127.0.0.1:18080; keepalive 64; keepalive_requests 10000000; }
  server { listen 127.0.0.1:18081 backlog=4096; location / { proxy_pass http://b; proxy_http_version 1.1;
    proxy_set_header Connection \"\"; } }"
hap_conf() { # FILE BIND BACKEND-SERVER
    cat >"$1" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    http-reuse always
frontend f
    bind $2
    default_backend b
backend b
    server s1 $3
EOF
}
hap_conf "$W/haproxy.cfg" 127.0.0.1:18082 127.0.0.1:18080
sed -e 's/mode http/mode tcp/' -e '/http-reuse/d' -e 's/18082/18083/' "$W/haproxy.cfg" >"$W/haproxy-tcp.cfg"
# The mTLS pairs use the mesh-mtls pair's certificates: the client sidecar's to connect, the
# backend sidecar's to serve, ca.pem to verify on both sides. The backend sidecar's certificate
# carries DNS:backend.default.svc.cluster.local (and the SPIFFE URI): both clients verify that name.
CC="$W/certs/default/client"
BC="$W/certs/default/backend"
CA="$W/certs/ca.pem"
SNAME=backend.default.svc.cluster.local
# nginx pair. Names are verified without SNI (proxy_ssl_server_name off, as haproxy below sends
# none either); the handshake happens once per pooled connection anyway.
ngx_conf "$W/nginxmtls-c" "upstream s { server 127.0.0.1:18132; keepalive 64; keepalive_requests 10000000; }
  server { listen 127.0.0.1:18131 backlog=4096; location / { proxy_pass https://s; proxy_http_version 1.1;
    proxy_set_header Connection \"\"; proxy_ssl_protocols TLSv1.3; proxy_ssl_certificate $CC/cert.pem;
    proxy_ssl_certificate_key $CC/key.pem; proxy_ssl_trusted_certificate $CA; proxy_ssl_verify on;
    proxy_ssl_name $SNAME; proxy_ssl_session_reuse on; } }"
ngx_conf "$W/nginxmtls-s" "upstream b { server 127.0.0.1:18080; keepalive 64; keepalive_requests 10000000; }
  server { listen 127.0.0.1:18132 ssl backlog=4096; ssl_protocols TLSv1.3; ssl_certificate $BC/cert.pem;
    ssl_certificate_key $BC/key.pem; ssl_client_certificate $CA; ssl_verify_client on;
    location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
# haproxy pair: haproxy wants certificate and key in one file. `verifyhost` checks the server's
# name (no SNI is sent, like nginx above); `verify required` on the bind asks for a client certificate.
cat "$CC/cert.pem" "$CC/key.pem" >"$W/haproxy-client.pem"
cat "$BC/cert.pem" "$BC/key.pem" >"$W/haproxy-server.pem"
hap_conf "$W/haproxymtls-c.cfg" "127.0.0.1:18141" \
    "127.0.0.1:18142 ssl crt $W/haproxy-client.pem ca-file $CA verify required verifyhost $SNAME ssl-min-ver TLSv1.3"
hap_conf "$W/haproxymtls-s.cfg" "127.0.0.1:18142 ssl crt $W/haproxy-server.pem ca-file $CA verify required ssl-min-ver TLSv1.3" \
    "127.0.0.1:18080"
taskset -c $PCPU "$NGINX" -c "$W/backend/nginx.conf" -p "$W/backend" & PIDS+=($!)
taskset -c $PCPU "$NGINX" -c "$W/nginxproxy/nginx.conf" -p "$W/nginxproxy" & PIDS+=($!)
NGINXPROXY_MASTER=$!
taskset -c $PCPU "$HAPROXY" -f "$W/haproxy.cfg" -db & PIDS+=($!)
HAPROXY_PID=$!
taskset -c $PCPU "$HAPROXY" -f "$W/haproxy-tcp.cfg" -db & PIDS+=($!)
L4_PID=$!
taskset -c $PCPU "$NGINX" -c "$W/nginxmtls-c/nginx.conf" -p "$W/nginxmtls-c" & PIDS+=($!)
NGINXMTLS_C_MASTER=$!
taskset -c $PCPU "$NGINX" -c "$W/nginxmtls-s/nginx.conf" -p "$W/nginxmtls-s" & PIDS+=($!)
NGINXMTLS_S_MASTER=$!
taskset -c $PCPU "$HAPROXY" -f "$W/haproxymtls-c.cfg" -db & PIDS+=($!)
HAPROXYMTLS_C=$!
taskset -c $PCPU "$HAPROXY" -f "$W/haproxymtls-s.cfg" -db & PIDS+=($!)
HAPROXYMTLS_S=$!
sidecar() { # NAME INBOUND
    taskset -c $PCPU "$BIN/mesh-proxy" --artifact "$W/art/default.$1.json" --cert "$W/certs/default/$1/cert.pem" \
        --key "$W/certs/default/$1/key.pem" --trust-bundle "$W/certs/ca.pem" --inbound-addr "127.0.0.1:$2" \
        --workers 1 >"$W/proxy.$1.log" 2>&1 &
    PIDS+=($!)
}
sidecar backend 18111
MESH_B=$!
sidecar client 18121
MESH_C=$!
# 18131 and 18141 answer only once the whole pair (and its mutual TLS) works
for u in http://127.0.0.1:18080/ http://127.0.0.1:18081/ http://127.0.0.1:18082/ http://127.0.0.1:18083/ http://127.0.0.1:18113/ready \
    http://127.0.0.1:18123/ready http://127.0.0.1:18131/ http://127.0.0.1:18141/; do
    for _ in $(seq 1 100); do curl -sf -o /dev/null "$u" && break; sleep 0.1; done
    curl -sf -o /dev/null "$u" || {
        echo "$u is not answering"
        cat "$W"/proxy.*.log "$W"/nginxmtls-*/error.log
        exit 2
    }
done
curl -sf -o /dev/null -H 'Host: backend' http://127.0.0.1:18122/ || { echo "mTLS pair not answering"; exit 2; }
NGINXPROXY_WORKER=$(pgrep -P "$NGINXPROXY_MASTER" | head -1)
NGINXMTLS_C_WORKER=$(pgrep -P "$NGINXMTLS_C_MASTER" | head -1)
NGINXMTLS_S_WORKER=$(pgrep -P "$NGINXMTLS_S_MASTER" | head -1)

cpu_ns() { # PIDS...: CPU time of every thread, ns
    local p t s=0
    for p in "$@"; do for t in /proc/"$p"/task/*/schedstat; do read -r c _ <"$t" && s=$((s + c)); done; done
    echo $s
}
cpu_ticks() { # PIDS...: "user kernel" CPU ticks of every thread (/proc/PID/task/*/stat fields 14, 15)
    local p f=()
    for p in "$@"; do f+=(/proc/"$p"/task/*/stat); done
    [ ${#f[@]} -gt 0 ] || { echo "0 0"; return; }
    cat "${f[@]}" 2>/dev/null | awk '{ sub(/.*\) /, ""); u += $12; k += $13 } END { print u + 0, k + 0 }'
}
declare -A URL TPIDS
URL[direct]=http://127.0.0.1:18080/;  TPIDS[direct]=""
URL[nginx]=http://127.0.0.1:18081/;   TPIDS[nginx]="$NGINXPROXY_WORKER"
URL[haproxy]=http://127.0.0.1:18082/; TPIDS[haproxy]="$HAPROXY_PID"
URL[l4-floor]=http://127.0.0.1:18083/; TPIDS[l4-floor]="$L4_PID"
URL[mesh]=http://127.0.0.1:18111/;    TPIDS[mesh]="$MESH_B"
URL[nginx-mtls]=http://127.0.0.1:18131/;   TPIDS[nginx-mtls]="$NGINXMTLS_C_WORKER $NGINXMTLS_S_WORKER"
URL[haproxy-mtls]=http://127.0.0.1:18141/; TPIDS[haproxy-mtls]="$HAPROXYMTLS_C $HAPROXYMTLS_S"
URL[mesh-mtls]=http://127.0.0.1:18122/;    TPIDS[mesh-mtls]="$MESH_C $MESH_B"
# TARGETS (environment) may pick a subset; `direct` is always measured (added = target - direct).
T=${TARGETS:-nginx haproxy l4-floor mesh nginx-mtls haproxy-mtls mesh-mtls}
TARGETS="direct ${T//direct/}"

run_oha() { # TARGET RATE DURATION FILE [SQLITE]: SQLITE collects every request's latency
    taskset -c $LCPU "$OHA" --no-tui -z "$3" -q "$2" --latency-correction -c 16 -w --worker-threads 1 \
        --host backend --output-format json -o "$4" ${5:+--db-url "$5"} "${URL[$1]}" >/dev/null 2>&1
}
echo "warm-up"
for t in $TARGETS; do run_oha "$t" 1000 1s "$W/warm.json"; done

RES="$OUT/results.tsv"
printf 'round\trate\ttarget\tp50_us\tp99_us\trps\tsuccess\trequests\tcpu_us_per_req\tkernel_share\n' >"$RES"
mkdir -p "$W/db"
read -r -a TLIST <<<"$TARGETS"
for round in $(seq 1 "$ROUNDS"); do
    # Each round starts one target further along the list, so that no target always runs right
    # after the same neighbour or at the same point of a round (the VM's bursts come in runs).
    shift_by=$(((round - 1) % ${#TLIST[@]}))
    ORDER="${TLIST[*]:$shift_by} ${TLIST[*]:0:$shift_by}"
    for rate in $RATES; do
        for t in $ORDER; do
            # shellcheck disable=SC2086
            c0=$(cpu_ns ${TPIDS[$t]}) && read -r u0 k0 < <(cpu_ticks ${TPIDS[$t]})
            run_oha "$t" "$rate" "$DURATION" "$W/o.json" "$W/db/$t.$rate.db"
            # shellcheck disable=SC2086
            c1=$(cpu_ns ${TPIDS[$t]}) && read -r u1 k1 < <(cpu_ticks ${TPIDS[$t]})
            python3 - "$W/o.json" "$round" "$rate" "$t" "$((c1 - c0))" "$((k1 - k0))" "$((u1 - u0))" >>"$RES" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
lp = d["latencyPercentiles"]
n = sum(d.get("statusCodeDistribution", {}).values())
cpu = int(sys.argv[5]) / 1000 / n if n else 0
ks, us = int(sys.argv[6]), int(sys.argv[7])
share = f"{ks / (ks + us):.3f}" if ks + us else "nan"
print(f"{sys.argv[2]}\t{sys.argv[3]}\t{sys.argv[4]}\t{lp['p50'] * 1e6:.1f}\t{lp['p99'] * 1e6:.1f}\t"
      f"{d['summary']['requestsPerSec']:.0f}\t{d['summary']['successRate']:.4f}\t{n}\t{cpu:.1f}\t{share}")
EOF
            tail -1 "$RES"
        done
    done
done

# ---------------------------------------------------------------- RSS and handshakes
rss() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' /proc/"$1"/status; }
RSS_NGINX=$(rss "$NGINXPROXY_WORKER")
RSS_HAPROXY=$(rss "$HAPROXY_PID")
RSS_L4=$(rss "$L4_PID")
RSS_MB=$(rss "$MESH_B")
RSS_MC=$(rss "$MESH_C")
RSS_NGINXMTLS="$(rss "$NGINXMTLS_C_WORKER") + $(rss "$NGINXMTLS_S_WORKER")"
RSS_HAPROXYMTLS="$(rss "$HAPROXYMTLS_C") + $(rss "$HAPROXYMTLS_S")"
c0=$(cpu_ns "$MESH_B")
HS=$(taskset -c $LCPU openssl s_time -connect 127.0.0.1:18111 -new -tls1_3 -time 5 \
    -cert "$W/certs/default/client/cert.pem" -key "$W/certs/default/client/key.pem" -CAfile "$W/certs/ca.pem" 2>/dev/null |
    awk '/connections in [0-9.]+ real seconds/ {print $1, $4}' | head -1)
c1=$(cpu_ns "$MESH_B")
HS_N=${HS%% *}
HS_REAL=${HS##* }
HS_FAIL=$(curl -s http://127.0.0.1:18113/metrics | awk '/^mesh_proxy_tls_handshake_failures_total\{listener="inbound"\}/ {print $2}')

python3 - "$RES" "$OUT/summary.md" "$RSS_NGINX" "$RSS_HAPROXY" "$RSS_MB" "$RSS_MC" "${HS_N:-0}" "${HS_REAL:-1}" \
    "$((c1 - c0))" "$ROUTES" "${HS_FAIL:-?}" "$RSS_NGINXMTLS" "$RSS_HAPROXYMTLS" "$W/db" "$RSS_L4" <<'EOF'
import csv, math, os, sqlite3, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
out = open(sys.argv[2], "w")
rss = {"nginx": sys.argv[3], "haproxy": sys.argv[4], "mesh": sys.argv[5],
       "nginx-mtls": sys.argv[12], "haproxy-mtls": sys.argv[13], "mesh-mtls": f"{sys.argv[6]} + {sys.argv[5]}",
       "l4-floor": sys.argv[15]}
hs_n, hs_real, hs_cpu = int(sys.argv[7]), float(sys.argv[8]), int(sys.argv[9]) / 1e9
def p(*a):
    print(*a); print(*a, file=out)
by = {}
for r in rows:
    by.setdefault((r["round"], r["rate"]), {})[r["target"]] = r
rates = sorted({r["rate"] for r in rows}, key=int)
targets = [t for t in ["nginx", "haproxy", "l4-floor", "mesh", "nginx-mtls", "haproxy-mtls", "mesh-mtls"]
           if any(r["target"] == t for r in rows)]
k = lambda rate: f"@{int(rate)//1000}k"

# 1. per round: target minus direct in the same round, median (min..max) over rounds
p("Per round (added = target minus direct in the same round; median (min..max) over rounds):")
p("")
p("| target | " + " | ".join(f"added p50 {k(x)} | added p99 {k(x)}" for x in rates)
  + " | " + " | ".join(f"CPU µs/req {k(x)} (kernel)" for x in rates) + " | peak RSS MB |")
p("| --- " * (1 + 3 * len(rates) + 1) + "|")
added99 = {}  # (target, rate) -> median over rounds of the added p99, µs
for t in targets:
    cells, cpus = [], []
    for rate in rates:
        a50, a99, cpu, ks = [], [], [], []
        for key, v in by.items():
            if key[1] == rate and t in v and "direct" in v:
                a50.append(float(v[t]["p50_us"]) - float(v["direct"]["p50_us"]))
                a99.append(float(v[t]["p99_us"]) - float(v["direct"]["p99_us"]))
                cpu.append(float(v[t]["cpu_us_per_req"]))
                if v[t]["kernel_share"] != "nan":
                    ks.append(float(v[t]["kernel_share"]))
        rng = lambda xs: f"{statistics.median(xs):+.0f} ({min(xs):+.0f}..{max(xs):+.0f})" if xs else "n/a"
        cells += [rng(a50), rng(a99)]
        share = f" ({statistics.median(ks):.0%})" if ks else ""
        cpus.append(f"{statistics.median(cpu):.1f}{share}" if cpu else "n/a")
        if a99:
            added99[(t, rate)] = statistics.median(a99)
    p(f"| {t} | " + " | ".join(cells) + " | " + " | ".join(cpus) + f" | {rss[t]} |")
p("")

# 2. pooled: every request of every round (oha's per-request records, latency-corrected)
def durations(t, rate):
    f = os.path.join(sys.argv[14], f"{t}.{rate}.db")
    if not os.path.exists(f):
        return []
    with sqlite3.connect(f) as c:
        return sorted(d for (d,) in c.execute("SELECT duration FROM oha"))
def pct(xs, q):  # nearest rank
    return xs[max(0, math.ceil(q * len(xs)) - 1)] * 1e6
pooled = {}  # (target, rate) -> (p50, p99, p99.9, n)
for rate in rates:
    for t in ["direct"] + targets:
        xs = durations(t, rate)
        if xs:
            pooled[(t, rate)] = (pct(xs, 0.5), pct(xs, 0.99), pct(xs, 0.999), len(xs))
p("Pooled (every request of every round; added = target minus direct, both pooled):")
p("")
p("| target | " + " | ".join(f"p50 {k(x)} | p99 {k(x)} | p99.9 {k(x)} | added p50 {k(x)} | added p99 {k(x)}"
                            for x in rates) + " |")
p("| --- " * (1 + 5 * len(rates)) + "|")
for t in ["direct"] + targets:
    cells = []
    for rate in rates:
        v, d = pooled.get((t, rate)), pooled.get(("direct", rate))
        if v is None or d is None:
            cells += ["n/a"] * 5
            continue
        added = ["", ""] if t == "direct" else [f"{v[0] - d[0]:+.0f}", f"{v[1] - d[1]:+.0f}"]
        cells += [f"{v[0]:.0f}", f"{v[1]:.0f}", f"{v[2]:.0f}"] + added
    p(f"| {t} | " + " | ".join(cells) + " |")
p("")

# 3. issue 5's goal: our added p99 at most 0.7 x nginx's and haproxy's
def ratio(get, ours, theirs, rate):
    a, b = get(ours, rate), get(theirs, rate)
    if a is None or b is None:
        return f"{theirs} n/a"
    r = f"{a / b:.2f}" if b > 0 else "n/a"
    return f"{theirs} {b:+.0f} µs -> {r}"
def pooled_added(t, rate):
    v, d = pooled.get((t, rate)), pooled.get(("direct", rate))
    return None if v is None or d is None else v[1] - d[1]
for name, get in [("pooled", pooled_added), ("median of rounds", lambda t, rate: added99.get((t, rate)))]:
    for rate in rates:
        m = lambda t: f"{get(t, rate):+.0f} µs" if get(t, rate) is not None else "n/a"
        one = "; ".join(ratio(get, "mesh", t, rate) for t in ("nginx", "haproxy"))
        pair = "; ".join(ratio(get, "mesh-mtls", t, rate) for t in ("nginx-mtls", "haproxy-mtls"))
        p(f"added p99 ratio {k(rate)}, {name} (goal <= 0.70): one proxy, mesh {m('mesh')} / {one}; "
          f"pair with mTLS, mesh-mtls {m('mesh-mtls')} / {pair}")
        floor = "; ".join(ratio(get, "l4-floor", t, rate) for t in ("nginx", "haproxy"))
        p(f"  floor {k(rate)}, {name}: a byte relay with no HTTP work, l4-floor {m('l4-floor')} / {floor}")
p("")
low = min(float(r["success"]) for r in rows)
p(f"lowest success rate of any run: {low:.4f}; routes in the client sidecar's artifact: {sys.argv[10]}")
if hs_n:
    p(f"TLS 1.3 full handshakes (openssl s_time -new, one client): {hs_n / hs_real:.0f}/s; "
      f"mesh-proxy CPU {hs_cpu / hs_n * 1e6:.0f} µs per handshake = {hs_n / hs_cpu:.0f} handshakes per second of one core"
      f" (inbound handshake failures counted: {sys.argv[11]})")
EOF
echo "results: $RES, $OUT/summary.md"
