#!/usr/bin/env bash
# Local demo: bookinfo on loopback with mesh-proxy sidecars, stand-in apps, and an unmodified nginx.
#
#   scripts/demo.sh            (MESH_DEMO_PROFILE=debug skips the release build; MESH_DEMO_KEEP=1 keeps
#                               everything running until Ctrl-C so you can curl it yourself)
#
# What it shows: `meshc build` compiles examples/meshes/bookinfo into one artifact per sidecar;
# six mesh-proxy sidecars enforce them (reviews runs three versions); the details service is an
# unmodified nginx from Debian that listens on 127.0.0.1 only, so every call to it arrives over
# TLS 1.3 with mutual authentication through its sidecar, and every call's latency is measured.
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PROFILE=${MESH_DEMO_PROFILE:-release}
W=$(mktemp -d /tmp/mesh-demo.XXXXXX)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$NGINX" ]; then
    echo "nginx is missing: apt-get install -y nginx (Debian package, used unmodified)"
    exit 2
fi

for port in 17100 17103 17200 17203 17303 17403; do
    if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo "port $port is busy (another demo or e2e run?)"; exit 2; fi
done

say "building meshc and mesh-proxy ($PROFILE)"
if [ "$PROFILE" = release ]; then
    (cd "$ROOT" && cargo build -q --release -p meshc -p mesh-proxy) || exit 2
else
    (cd "$ROOT" && cargo build -q -p meshc -p mesh-proxy) || exit 2
fi
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE"
MESH="$ROOT/examples/meshes/bookinfo"

say "meshc build examples/meshes/bookinfo; meshc certs (development CA, SPIFFE IDs)"
"$BIN/meshc" build "$MESH" --out "$W/art" || exit 2
"$BIN/meshc" certs "$MESH" --out "$W/certs" || exit 2

say "starting stand-in apps, nginx (as the details app) and six sidecars"
python_app() { python3 "$ROOT/e2e/app.py" "$1" "$2" >/dev/null 2>&1 & PIDS+=($!); }
python_app 17100 productpage
python_app 17300 reviews-v1
python_app 17310 reviews-v2
python_app 17320 reviews-v3
python_app 17400 ratings
mkdir -p "$W/nginx"
cat >"$W/nginx/nginx.conf" <<EOF
daemon off; worker_processes 1; pid $W/nginx/nginx.pid; error_log $W/nginx/error.log;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $W/nginx; proxy_temp_path $W/nginx; fastcgi_temp_path $W/nginx;
  uwsgi_temp_path $W/nginx; scgi_temp_path $W/nginx;
  server { listen 127.0.0.1:17200; location / { return 200 'details from nginx\n'; } } }
EOF
"$NGINX" -c "$W/nginx/nginx.conf" -p "$W/nginx" &
PIDS+=($!)
sidecar() { # NAME SVC BASE
    "$BIN/mesh-proxy" --artifact "$W/art/default.$2.json" --cert "$W/certs/default/$2/cert.pem" \
        --key "$W/certs/default/$2/key.pem" --trust-bundle "$W/certs/ca.pem" \
        --app-addr "127.0.0.1:${3}0" --inbound-addr "127.0.0.1:${3}1" --outbound-addr "127.0.0.1:${3}2" \
        --admin-addr "127.0.0.1:${3}3" --workers 1 >"$W/proxy.$1.log" 2>&1 &
    PIDS+=($!)
}
sidecar productpage productpage 1710
sidecar details details 1720
sidecar reviews-v1 reviews 1730
sidecar reviews-v2 reviews 1731
sidecar reviews-v3 reviews 1732
sidecar ratings ratings 1740
for port in 17103 17203 17303 17313 17323 17403; do
    for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/ready" && break; sleep 0.1; done
done
for port in 17100 17300 17310 17320 17400 17200; do
    for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done

say "productpage calls nginx (details) through its sidecar: plain HTTP in, mTLS TLS 1.3 on the wire"
echo "\$ curl -x http://127.0.0.1:17102 http://details:9080/details/0"
curl -s -i -x http://127.0.0.1:17102 http://details:9080/details/0
echo "\$ openssl s_client -tls1_3 ... 127.0.0.1:17201   (the details sidecar's inbound listener)"
printf 'GET / HTTP/1.1\r\nHost: details\r\nConnection: close\r\n\r\n' |
    timeout 5 openssl s_client -connect 127.0.0.1:17201 -tls1_3 -CAfile "$W/certs/ca.pem" \
        -cert "$W/certs/default/productpage/cert.pem" -key "$W/certs/default/productpage/key.pem" 2>&1 |
    grep -E '^(Protocol|New, |Verify return code|HTTP/1.1|details)' | sed 's/^/    /'
echo "\$ openssl s_client -tls1_2 ... 127.0.0.1:17201   (refused: TLS 1.3 only)"
printf '' | timeout 5 openssl s_client -connect 127.0.0.1:17201 -tls1_2 -CAfile "$W/certs/ca.pem" \
    -cert "$W/certs/default/productpage/cert.pem" -key "$W/certs/default/productpage/key.pem" 2>&1 |
    grep -iE 'alert|error' | head -2 | sed 's/^/    /'

say "routing and authorization"
echo "jason sees reviews v2:   $(curl -s -x http://127.0.0.1:17102 -H 'x-user: jason' http://reviews:9080/reviews/1)"
echo "ratings -> productpage:  $(curl -s -o /dev/null -w '%{http_code}' -x http://127.0.0.1:17402 http://productpage:9080/) (Cedar: only-ingress-calls-productpage)"
echo "reviews POST ratings:    $(curl -s -o /dev/null -w '%{http_code}' -X POST -x http://127.0.0.1:17302 http://ratings:9080/ratings/1) (Cedar: no-writes-to-ratings)"
echo "GET /v1/ratings/1:       $(curl -s -o /dev/null -w '%{http_code} -> %{redirect_url}' -x http://127.0.0.1:17302 http://ratings:9080/v1/ratings/1)"

say "traffic: 2000 calls to nginx, 1000 to reviews (80/10/10 split), 500 reviews -> ratings"
python3 "$ROOT/e2e/load.py" 17102 http://details:9080/details/0 --count 2000 --conns 4
python3 "$ROOT/e2e/load.py" 17102 http://reviews:9080/reviews/1 --count 1000 --conns 4
python3 "$ROOT/e2e/load.py" 17302 http://ratings:9080/ratings/1 --count 500 --conns 2

say "latency from /metrics (client side: outbound; server side: inbound, which includes the app)"
python3 "$ROOT/scripts/metrics-summary.py" productpage=http://127.0.0.1:17103/metrics \
    details=http://127.0.0.1:17203/metrics reviews-v1=http://127.0.0.1:17303/metrics \
    ratings=http://127.0.0.1:17403/metrics
echo
curl -s http://127.0.0.1:17203/metrics | grep -E '^mesh_proxy_(authz_decisions|requests)_total' | grep -v ' 0$' | sed 's/^/details  /'
curl -s http://127.0.0.1:17103/metrics | grep -E '^mesh_proxy_authz_decisions_total' | sed 's/^/productpage  /'

if [ "${MESH_DEMO_KEEP:-0}" = 1 ]; then
    say "running; try: curl -x http://127.0.0.1:17102 http://details:9080/  or  curl 127.0.0.1:17103/metrics  (Ctrl-C stops)"
    wait
fi
