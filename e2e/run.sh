#!/usr/bin/env bash
# End-to-end tests of meshc + mesh-proxy with real processes on loopback (bookinfo, ports 171xx-174xx).
# Usage: e2e/run.sh            (MESH_E2E_KEEP=1 keeps the work dir; MESH_E2E_PROFILE=release uses release builds)
# Prints one line per check and a final `N passed, M failed`; exits 1 when anything failed.
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERE="$ROOT/e2e"
PROFILE=${MESH_E2E_PROFILE:-debug}
W=$(mktemp -d /tmp/mesh-e2e.XXXXXX)
PIDS=()
PASS=0
FAIL=0

cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if [ -f "$W/nginx/nginx.pid" ]; then kill "$(cat "$W/nginx/nginx.pid")" 2>/dev/null; fi
    if [ "${MESH_E2E_KEEP:-0}" = 1 ]; then echo "work dir kept: $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT

ok() { PASS=$((PASS + 1)); echo "ok   - $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $1"; shift; local l; for l in "$@"; do echo "       $l"; done; }
# check NAME COMMAND...: passes when the command succeeds
check() { local n=$1; shift; if "$@" >"$W/last.out" 2>&1; then ok "$n"; else bad "$n" "$(head -c 600 "$W/last.out")"; fi; }

# ---------------------------------------------------------------- tools
need=()
for t in curl openssl python3; do command -v "$t" >/dev/null || need+=("$t"); done
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing ${need[*]}"
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null \
            || { echo "cannot install ${need[*]}"; exit 2; }
    else
        for t in "${need[@]}"; do [ "$t" = nginx ] || { echo "missing $t"; exit 2; }; done
    fi
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

echo "building meshc and mesh-proxy ($PROFILE)"
if [ "$PROFILE" = release ]; then
    (cd "$ROOT" && cargo build -q --release -p meshc -p mesh-proxy) || exit 2
else
    (cd "$ROOT" && cargo build -q -p meshc -p mesh-proxy) || exit 2
fi
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE"
MESHC="$BIN/meshc"
PROXY="$BIN/mesh-proxy"
MESH="$ROOT/examples/meshes/bookinfo"

# ---------------------------------------------------------------- mesh, certs, artifacts
"$MESHC" certs "$MESH" --out "$W/certs" >/dev/null 2>&1 || exit 2
"$MESHC" certs "$MESH" --out "$W/othercerts" >/dev/null 2>&1 || exit 2 # a second, unrelated CA
"$MESHC" build "$MESH" --out "$W/art" >/dev/null 2>&1 || exit 2
cp -r "$MESH" "$W/mesh-audit"
sed -i 's/mode: enforce/mode: audit/' "$W/mesh-audit/mesh.yaml"
"$MESHC" build "$W/mesh-audit" --out "$W/art-audit" >/dev/null 2>&1 || exit 2
CA="$W/certs/ca.pem"
C="$W/certs/default"

# ConfigMap-style volume per sidecar: NAME.json -> ..data/NAME.json, ..data -> ..<timestamp>
SEQ=0
publish() { # publish SIDECAR SVC FILE: atomically swap the sidecar's ..data symlink
    local d="$W/cfg/$1" ts
    SEQ=$((SEQ + 1))
    ts="..2026_01_01_00_00_00.$SEQ"
    mkdir -p "$d/$ts"
    cp "$3" "$d/$ts/default.$2.json"
    ln -sfn "$ts" "$d/..data_tmp"
    mv -T "$d/..data_tmp" "$d/..data"
    ln -sfn "..data/default.$2.json" "$d/default.$2.json"
    find "$d" -maxdepth 1 -name '..2026*' ! -name "$ts" -exec rm -rf {} + 2>/dev/null
    return 0
}
sha() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }

# ---------------------------------------------------------------- processes
start_app() { # start_app PORT INSTANCE
    python3 "$HERE/app.py" "$1" "$2" >"$W/app.$2.log" 2>&1 &
    PIDS+=($!)
}
declare -A SIDECAR_PID
start_sidecar() { # start_sidecar NAME SVC BASE (ports BASE0 app, BASE1 inbound, BASE2 outbound, BASE3 admin)
    publish "$1" "$2" "$W/art/default.$2.json"
    "$PROXY" --artifact "$W/cfg/$1/default.$2.json" --cert "$C/$2/cert.pem" --key "$C/$2/key.pem" \
        --trust-bundle "$CA" --app-addr "127.0.0.1:${3}0" --inbound-addr "127.0.0.1:${3}1" \
        --outbound-addr "127.0.0.1:${3}2" --admin-addr "127.0.0.1:${3}3" --drain-timeout 10s \
        --workers 1 --access-log >"$W/access.$1.log" 2>"$W/proxy.$1.log" &
    PIDS+=($!)
    SIDECAR_PID[$1]=$!
}
wait_http() { # wait_http URL: up to 10 s
    local i
    for i in $(seq 1 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
    return 1
}

for port in 17100 17103 17200 17203 17300 17303 17310 17313 17320 17323 17400 17403; do
    if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo "port $port is busy (another e2e run or the demo?)"; exit 2; fi
done
start_app 17100 productpage
start_app 17200 details
start_app 17300 reviews-v1
start_app 17310 reviews-v2
NGINX_OK=0
if [ -x "$NGINX" ]; then # an unmodified nginx is the reviews-v3 application
    mkdir -p "$W/nginx"
    cat >"$W/nginx/nginx.conf" <<EOF
daemon off; worker_processes 1; pid $W/nginx/nginx.pid; error_log $W/nginx/error.log;
events { worker_connections 256; }
http { access_log off; client_body_temp_path $W/nginx; proxy_temp_path $W/nginx; fastcgi_temp_path $W/nginx;
  uwsgi_temp_path $W/nginx; scgi_temp_path $W/nginx;
  server { listen 127.0.0.1:17320; location / { add_header x-instance reviews-v3; return 200 'nginx reviews-v3\n'; } } }
EOF
    "$NGINX" -c "$W/nginx/nginx.conf" -p "$W/nginx" >"$W/nginx/out.log" 2>&1 &
    PIDS+=($!)
    NGINX_OK=1
else
    start_app 17320 reviews-v3
fi
start_app 17400 ratings
start_sidecar productpage productpage 1710
start_sidecar details details 1720
start_sidecar reviews-v1 reviews 1730
start_sidecar reviews-v2 reviews 1731
start_sidecar reviews-v3 reviews 1732
start_sidecar ratings ratings 1740
for a in 17100 17200 17300 17310 17320 17400; do wait_http "http://127.0.0.1:$a/__count" || { echo "app on $a did not start"; exit 2; }; done
for s in 1710 1720 1730 1731 1732 1740; do wait_http "http://127.0.0.1:${s}3/ready" || { echo "sidecar ${s}x not ready"; tail "$W"/proxy.*.log; exit 2; }; done
check "admin /ready, /live answer 200 once the artifact is loaded" curl -sf http://127.0.0.1:17103/live
# `mesh-proxy --help | head`: the reader is gone before the help is written; exit 0, no panic
closed_stdout() { python3 -c 'import os, subprocess, sys
r, w = os.pipe(); os.close(r)
p = subprocess.run(sys.argv[1:], stdout=w, stderr=subprocess.PIPE); os.close(w)
sys.stderr.write(p.stderr.decode())
sys.exit(p.returncode or (1 if b"panicked" in p.stderr else 0))' "$@"; }
check "mesh-proxy --help into a closed pipe exits 0" closed_stdout "$PROXY" --help
check "mesh-proxy --version into a closed pipe exits 0" closed_stdout "$PROXY" --version

count() { curl -s "http://127.0.0.1:$1/__count"; }
# metric ADMIN_PORT REGEX: the value of the first series matching (0 when absent)
metric() { curl -s "http://127.0.0.1:$1/metrics" | grep -E "^$2" | head -1 | awk '{print $NF}' | grep . || echo 0; }
fhash() { curl -s "http://127.0.0.1:$1/config" | python3 -c 'import json,sys; d=json.load(sys.stdin); print((d.get("artifact") or {}).get("file_sha256"))'; }

# ---------------------------------------------------------------- 1. curl -x through two sidecars over mTLS
before=$(count 17310)
allowed0=$(metric 17313 'mesh_proxy_authz_decisions_total\{result="allowed"\}')
out=$(curl -s -D "$W/h1" -x http://127.0.0.1:17102 -H 'x-user: jason' http://reviews:9080/reviews/1)
after=$(count 17310)
allowed1=$(metric 17313 'mesh_proxy_authz_decisions_total\{result="allowed"\}')
if grep -q '"instance": "reviews-v2"' <<<"$out" && [ $((after - before)) = 1 ] && [ $((allowed1 - allowed0)) = 1 ]; then
    ok "curl -x productpage outbound -> reviews-v2 app through the reviews-v2 inbound (mTLS, authorized)"
else
    bad "curl -x productpage outbound -> reviews-v2 app" "body=$out count $before->$after allowed $allowed0->$allowed1" "$(head -3 "$W/h1")"
fi
# The access log: one JSON line per request on each side, with its latency; a request the
# caller abandons (curl gives up at 0.2 s, the app takes 0.5 s) is logged too, with status 499.
# The wait lets the app finish it, so that later checks count the details app's hits alone.
curl -s -o /dev/null -m 0.2 -x http://127.0.0.1:17102 'http://details:9080/slow?ms=500'
access_lines() { # access_lines SIDECAR DIRECTION STATUS PATH-PREFIX: how many lines of its access log match
    python3 -c 'import json, sys
print(sum(1 for e in map(json.loads, open(sys.argv[1]))
          if (e["direction"], str(e["status"])) == (sys.argv[2], sys.argv[3])
          and e["path"].startswith(sys.argv[4]) and isinstance(e["duration_us"], int) and e["ts_ms"] > 0))' \
        "$W/access.$1.log" "$2" "$3" "$4"
}
sleep 0.8
check "access log: the caller's sidecar logs the request (outbound, 200, latency)" \
    test "$(access_lines productpage outbound 200 /reviews/1)" -ge 1
check "access log: the destination's sidecar logs it (inbound, the caller's identity, allowed)" \
    python3 -c 'import json, sys
sys.exit(0 if any(e["direction"] == "inbound" and e["path"] == "/reviews/1" and e["authz"] == "allowed"
    and e["peer"].endswith("/sa/productpage") for e in map(json.loads, open(sys.argv[1]))) else 1)' \
    "$W/access.reviews-v2.log"
check "access log: a request the caller abandons is logged with status 499 on both sides" \
    test "$(access_lines productpage outbound 499 /slow)$(access_lines details inbound 499 /slow)" = 11
out=$(curl -s -H 'Host: details:9080' http://127.0.0.1:17102/details/7)
check "origin-form request (destination from Host) reaches details" grep -q '"instance": "details"' <<<"$out"

before=$(count 17200)
out=$(python3 "$HERE/ws.py" 17102 details:9080 /details/ws 2>&1)
after=$(count 17200)
if grep -q 'accept ok; instance details; 2 messages echoed; closed' <<<"$out" && [ $((after - before)) = 1 ]; then
    ok "WebSocket through both sidecars over mTLS: $out"
else
    bad "WebSocket through both sidecars over mTLS" "$out" "details count $before -> $after"
fi

# ---------------------------------------------------------------- 2. routing table == meshc explain
# FROM_SIDECAR OUTBOUND_PORT METHOD URL [HEADER]
ROUTES="productpage 17102 GET http://reviews:9080/reviews/1 x-user:jason
productpage 17102 GET http://reviews:9080/reviews
productpage 17102 GET http://reviews.default:9080/reviews/2 x-user:jason
productpage 17102 GET http://reviews:9080/other
productpage 17102 GET http://details:9080/details/0
productpage 17102 POST http://details.default.svc.cluster.local:9080/details/1
productpage 17102 GET http://ratings:9080/ratings/1
reviews 17302 GET http://ratings:9080/ratings/1
reviews 17302 POST http://ratings:9080/ratings/1
reviews 17302 GET http://ratings:9080/v1/ratings/1
reviews 17302 GET http://ratings:9080/health
reviews 17302 POST http://ratings:9080/health
reviews 17302 GET http://ratings:9080/nothing
ratings 17402 GET http://productpage:9080/"
while read -r from port method url hdr; do
    args=()
    [ -n "${hdr:-}" ] && args=(-H "${hdr%%:*}: ${hdr#*:}")
    exp=$("$MESHC" explain "$MESH" --from "$from" "${args[@]}" --format json "$method" "$url" | python3 -c '
import json, sys
d = json.load(sys.stdin)
b = [x for x in d["backends"] if x["weight"] > 0]
inst = "-"
if d["status"] == 200 and len(b) == 1:
    inst = b[0]["service"].split("/")[1] + ("-" + b[0]["version"] if b[0].get("version") else "")
loc = (d.get("redirect") or {}).get("location") or "-"
print(d["status"], inst, loc)')
    read -r est einst eloc <<<"$exp"
    got=$(curl -s -o /dev/null -D - -X "$method" -x http://127.0.0.1:"$port" "${args[@]}" "$url" | tr -d '\r' | python3 -c '
import sys
lines = sys.stdin.read().split("\n")
h = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
print(lines[0].split()[1] if lines[0] else "000", h.get("x-instance", "-"), h.get("location", "-"))')
    read -r gst ginst gloc <<<"$got"
    # the instance must match where explain names one backend; a versionless service matches any instance of it
    inst_ok=0
    if [ "$einst" = - ] || [ "$ginst" = "$einst" ] || [[ "$ginst" == "$einst"-v* ]]; then inst_ok=1; fi
    if [ "$gst" = "$est" ] && [ $inst_ok = 1 ] && [ "$gloc" = "$eloc" ]; then
        ok "route $from $method $url ${hdr:-}: $gst $ginst $gloc (explain: $exp)"
    else
        bad "route $from $method $url ${hdr:-}" "explain: $exp" "proxy:   $got"
    fi
done <<<"$ROUTES"
cc=$(curl -s -o /dev/null -D - -x http://127.0.0.1:17302 http://ratings:9080/ratings/1 | tr -d '\r' | grep -i '^cache-control:')
check "ResponseHeaderModifier sets cache-control: no-store on ratings" grep -qi 'no-store' <<<"$cc"

# ---------------------------------------------------------------- 3. weighted split 80/10/10
res=$(python3 "$HERE/load.py" 17102 http://reviews:9080/reviews/1 --count 400 --conns 4)
if python3 -c '
import json, sys
d = json.loads(sys.argv[1]); i = d["instances"]
v1, v2, v3 = i.get("reviews-v1", 0), i.get("reviews-v2", 0), i.get("reviews-v3", 0)
# 400 draws: sd(v1) = 8, sd(v2) = sd(v3) = 6; accept about 4.5 sd
sys.exit(0 if d["failures"] == 0 and 284 <= v1 <= 356 and 14 <= v2 <= 66 and 14 <= v3 <= 66 else 1)' "$res"; then
    ok "weighted split 80/10/10 over 400 requests: $res"
else
    bad "weighted split 80/10/10 over 400 requests" "$res"
fi
[ $NGINX_OK = 1 ] && check "an unmodified nginx (reviews-v3) is reachable only over the mesh: it answered" grep -q '"reviews-v3": [1-9]' <<<"$res"

# ---------------------------------------------------------------- 4. inbound TLS
mkdir -p "$W/bad"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$W/bad/key.pem" 2>/dev/null
openssl req -new -key "$W/bad/key.pem" -subj /CN=productpage -out "$W/bad/csr.pem" 2>/dev/null
touch "$W/bad/index.txt"
echo 1000 >"$W/bad/serial"
cat >"$W/bad/ca.cnf" <<EOF
[ca]
default_ca = d
[d]
database = $W/bad/index.txt
new_certs_dir = $W/bad
serial = $W/bad/serial
default_md = sha256
policy = p
unique_subject = no
x509_extensions = ext
[p]
commonName = supplied
[ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = URI:spiffe://cluster.local/ns/default/sa/productpage
EOF
mkcert() { # mkcert OUT STARTDATE ENDDATE: sign the CSR with the mesh CA
    openssl ca -batch -notext -config "$W/bad/ca.cnf" -cert "$CA" -keyfile "$W/certs/ca-key.pem" \
        -in "$W/bad/csr.pem" -out "$1" -startdate "$2" -enddate "$3" >/dev/null 2>&1
}
mkcert "$W/bad/expired.pem" 20200101000000Z 20210101000000Z
mkcert "$W/bad/valid.pem" 20200101000000Z 20991231000000Z

REQ=$'GET /reviews/1 HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n'
tls() { # tls ARGS...: send one request over openssl s_client to reviews-v1 inbound; print what came back
    printf '%s' "$REQ" | timeout 5 openssl s_client -connect 127.0.0.1:17301 -CAfile "$CA" -quiet "$@" 2>&1
}
v1=$(count 17300)
fails0=$(metric 17303 'mesh_proxy_tls_handshake_failures_total\{listener="inbound"\}')
out=$(tls -tls1_2 -cert "$C/productpage/cert.pem" -key "$C/productpage/key.pem")
if grep -q 'HTTP/1.1' <<<"$out"; then bad "TLS 1.2 with a valid certificate refused" "$out"; else ok "TLS 1.2 with a valid certificate refused"; fi
out=$(tls -tls1_3)
if grep -q 'HTTP/1.1' <<<"$out"; then bad "TLS 1.3 without a client certificate refused" "$out"; else ok "TLS 1.3 without a client certificate refused"; fi
out=$(tls -tls1_3 -cert "$W/othercerts/default/productpage/cert.pem" -key "$W/othercerts/default/productpage/key.pem")
if grep -q 'HTTP/1.1' <<<"$out"; then bad "TLS 1.3 with a certificate from another CA refused" "$out"; else ok "TLS 1.3 with a certificate from another CA refused"; fi
if [ -s "$W/bad/expired.pem" ]; then
    out=$(tls -tls1_3 -cert "$W/bad/expired.pem" -key "$W/bad/key.pem")
    if grep -q 'HTTP/1.1' <<<"$out"; then bad "TLS 1.3 with an expired certificate refused" "$out"; else ok "TLS 1.3 with an expired certificate refused"; fi
else
    bad "could not make an expired certificate with openssl ca"
fi
fails1=$(metric 17303 'mesh_proxy_tls_handshake_failures_total\{listener="inbound"\}')
v1b=$(count 17300)
if [ "$v1b" = "$v1" ] && [ $((fails1 - fails0)) -ge 4 ]; then
    ok "refused handshakes counted ($fails0 -> $fails1) and never reached the app"
else
    bad "refused handshakes counted and never reached the app" "tls_handshake_failures $fails0 -> $fails1, app count $v1 -> $v1b"
fi
out=$(tls -tls1_3 -cert "$C/productpage/cert.pem" -key "$C/productpage/key.pem")
check "TLS 1.3 with a valid certificate (meshc certs) succeeds and reaches the app" grep -q 'HTTP/1.1 200' <<<"$out"
out=$(tls -tls1_3 -cert "$W/bad/valid.pem" -key "$W/bad/key.pem")
check "TLS 1.3 with a valid openssl-made certificate (control for the expired one) succeeds" grep -q 'HTTP/1.1 200' <<<"$out"
# Two Host headers over mutual TLS: the sidecar would authorize by one and the app could read the
# other; it answers 400 itself and the app never sees the request.
v1c=$(count 17300)
out=$(REQ=$'GET /reviews/1 HTTP/1.1\r\nHost: reviews\r\nHost: productpage\r\nConnection: close\r\n\r\n' \
    tls -tls1_3 -cert "$C/productpage/cert.pem" -key "$C/productpage/key.pem")
v1d=$(count 17300)
if grep -q 'HTTP/1.1 400' <<<"$out" && [ "$v1d" = "$v1c" ]; then
    ok "two Host headers over mutual TLS: 400 from the sidecar, app counter unchanged"
else
    bad "two Host headers over mutual TLS: 400 from the sidecar, app counter unchanged" "app $v1c -> $v1d: $out"
fi

# ---------------------------------------------------------------- 5. Cedar deny, audit mode
pp0=$(count 17100)
den0=$(metric 17103 'mesh_proxy_authz_decisions_total\{result="denied"\}')
st=$(curl -s -o "$W/deny.body" -w '%{http_code}' -x http://127.0.0.1:17402 http://productpage:9080/)
pp1=$(count 17100)
den1=$(metric 17103 'mesh_proxy_authz_decisions_total\{result="denied"\}')
if [ "$st" = 403 ] && [ "$pp1" = "$pp0" ] && [ $((den1 - den0)) = 1 ] && ! grep -qi 'only-ingress\|principal\|unless' "$W/deny.body"; then
    ok "Cedar deny (ratings -> productpage): 403 '$(head -c 80 "$W/deny.body" | tr '\n' ' ')', app counter unchanged, denied metric +1"
else
    bad "Cedar deny (ratings -> productpage)" "status $st, app count $pp0 -> $pp1, denied $den0 -> $den1, body $(head -c 200 "$W/deny.body")"
fi
r0=$(count 17400)
st=$(curl -s -o /dev/null -w '%{http_code}' -X POST -x http://127.0.0.1:17302 http://ratings:9080/ratings/1)
r1=$(count 17400)
check "Cedar forbid on writes (reviews POST ratings): 403 and the ratings app never sees it" test "$st:$r0" = "403:$r1"

# audit mode by a ConfigMap-style swap, timed
old=$(fhash 17103)
new=$(sha "$W/art-audit/default.productpage.json")
t0=$(date +%s%N)
publish productpage productpage "$W/art-audit/default.productpage.json"
took=-1
for i in $(seq 1 40); do
    if [ "$(fhash 17103)" = "$new" ]; then took=$((($(date +%s%N) - t0) / 1000000)); break; fi
    sleep 0.05
done
if [ "$took" -ge 0 ] && [ "$took" -le 1000 ]; then
    ok "ConfigMap ..data swap seen by /config within ${took} ms"
else
    bad "ConfigMap ..data swap seen by /config within 1 s" "old $old, want $new, got $(fhash 17103) after 2 s"
fi
pp0=$(count 17100)
aud0=$(metric 17103 'mesh_proxy_authz_decisions_total\{result="audited_deny"\}')
st=$(curl -s -o /dev/null -w '%{http_code}' -x http://127.0.0.1:17402 http://productpage:9080/)
pp1=$(count 17100)
aud1=$(metric 17103 'mesh_proxy_authz_decisions_total\{result="audited_deny"\}')
check "audit mode lets the denied request through ($st), app +$((pp1 - pp0)), audited_deny +$((aud1 - aud0))" \
    test "$st:$((pp1 - pp0)):$((aud1 - aud0))" = "200:1:1"

# ---------------------------------------------------------------- 6. a truncated artifact is refused
good=$(fhash 17103)
f0=$(metric 17103 'mesh_proxy_artifact_reloads_total\{result="failure"\}')
head -c 300 "$W/art/default.productpage.json" >"$W/truncated.json"
publish productpage productpage "$W/truncated.json"
sleep 1.5
f1=$(metric 17103 'mesh_proxy_artifact_reloads_total\{result="failure"\}')
st=$(curl -s -o /dev/null -w '%{http_code}' -x http://127.0.0.1:17102 http://details:9080/details/1)
ready=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:17103/ready)
if [ "$(fhash 17103)" = "$good" ] && [ $((f1 - f0)) -ge 1 ] && [ "$st" = 200 ] && [ "$ready" = 200 ]; then
    ok "truncated artifact refused: old one serving, reload failures $f0 -> $f1, still ready"
else
    bad "truncated artifact refused" "hash $(fhash 17103) (good $good), failures $f0 -> $f1, request $st, ready $ready"
fi
printf 'x' | cat "$W/art/default.productpage.json" - | sed 's/"productpage"/"productpagf"/' >"$W/corrupt.json"
publish productpage productpage "$W/corrupt.json"
sleep 1.5
f2=$(metric 17103 'mesh_proxy_artifact_reloads_total\{result="failure"\}')
check "corrupted artifact (hash mismatch) refused, failures $f1 -> $f2" test "$(fhash 17103):$((f2 > f1))" = "$good:1"

# ---------------------------------------------------------------- 7. 50 swaps under constant load
rm -f "$W/stop"
python3 "$HERE/load.py" 17102 http://details:9080/details/1 --until-file "$W/stop" --conns 4 >"$W/load.json" &
LOADPID=$!
PIDS+=($LOADPID)
s0=$(metric 17103 'mesh_proxy_artifact_reloads_total\{result="success"\}')
for i in $(seq 1 50); do
    if [ $((i % 2)) = 1 ]; then publish productpage productpage "$W/art/default.productpage.json"
    else publish productpage productpage "$W/art-audit/default.productpage.json"; fi
    sleep 0.1
done
sleep 1
touch "$W/stop"
wait $LOADPID
s1=$(metric 17103 'mesh_proxy_artifact_reloads_total\{result="success"\}')
res=$(cat "$W/load.json")
last=$(sha "$W/art/default.productpage.json")
[ $((50 % 2)) = 0 ] && last=$(sha "$W/art-audit/default.productpage.json")
if python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if d["failures"]==0 and d["requests"]>=100 else 1)' "$res" \
    && [ "$(fhash 17103)" = "$last" ]; then
    ok "50 swaps under load: no failed request, last artifact serving, reloads +$((s1 - s0)): $res"
else
    bad "50 swaps under load" "$res" "serving $(fhash 17103), want $last, reloads +$((s1 - s0))"
fi

# ---------------------------------------------------------------- 8. histogram counts = requests sent
q='mesh_proxy_request_duration_seconds_count\{direction="outbound",destination="default/details"'
qi='mesh_proxy_request_duration_seconds_count\{direction="inbound"'
o0=$(metric 17103 "$q")
i0=$(metric 17203 "$qi")
u0=$(metric 17103 'mesh_proxy_upstream_duration_seconds_count\{direction="outbound",destination="default/details"')
sum0=$(metric 17103 'mesh_proxy_request_duration_seconds_sum\{direction="outbound",destination="default/details"')
res=$(python3 "$HERE/load.py" 17102 http://details:9080/details/2 --count 250 --conns 2)
o1=$(metric 17103 "$q")
i1=$(metric 17203 "$qi")
u1=$(metric 17103 'mesh_proxy_upstream_duration_seconds_count\{direction="outbound",destination="default/details"')
sum1=$(metric 17103 'mesh_proxy_request_duration_seconds_sum\{direction="outbound",destination="default/details"')
avg=$(python3 -c "print(round(($sum1 - $sum0) / 250 * 1e6))")
if [ $((o1 - o0)) = 250 ] && [ $((i1 - i0)) = 250 ] && [ $((u1 - u0)) = 250 ] && [ "$avg" -gt 20 ] && [ "$avg" -lt 500000 ]; then
    ok "histograms: 250 sent, outbound +$((o1 - o0)), upstream +$((u1 - u0)), details inbound +$((i1 - i0)); mean ${avg} us"
else
    bad "histogram counts equal requests sent (250)" "outbound +$((o1 - o0)), upstream +$((u1 - u0)), inbound +$((i1 - i0)), mean ${avg} us" "$res"
fi

# ---------------------------------------------------------------- 9. limits
st=$(curl -s -o /dev/null -w '%{http_code}' -x http://127.0.0.1:17102 -H "x-big: $(head -c 70000 /dev/zero | tr '\0' a)" http://details:9080/details/1)
check "a 70 KB request head gets 431 (got $st)" test "$st" = 431

# ---------------------------------------------------------------- 10. SIGTERM with a slow request in flight
curl -s -o "$W/slow.body" -w '%{http_code}' -x http://127.0.0.1:17102 'http://details:9080/slow?ms=2000' >"$W/slow.status" &
CURLPID=$!
sleep 0.5
t0=$(date +%s%N)
kill -TERM "${SIDECAR_PID[details]}" "${SIDECAR_PID[productpage]}"
sleep 0.3
# a draining sidecar accepts no new connection
newst=$(curl -s -o /dev/null -m 2 -w '%{http_code}' http://127.0.0.1:17203/ready)
wait "${SIDECAR_PID[details]}"
rc_d=$?
wait "${SIDECAR_PID[productpage]}"
rc_p=$?
wait $CURLPID
ms=$((($(date +%s%N) - t0) / 1000000))
if [ "$(cat "$W/slow.status")" = 200 ] && grep -q '"instance": "details"' "$W/slow.body" && [ $rc_d = 0 ] && [ $rc_p = 0 ]; then
    ok "SIGTERM during a 2 s request: it completed 200, both sidecars exited 0 (${ms} ms after the signal)"
else
    bad "SIGTERM during a slow request" "status $(cat "$W/slow.status"), exit details $rc_d, productpage $rc_p" "$(tail -3 "$W/proxy.details.log")"
fi
check "a draining sidecar stops accepting (admin answered '$newst')" test "$newst" != 200

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
