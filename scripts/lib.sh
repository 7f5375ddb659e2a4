# Shared by the scripts that start servers on loopback (demo.sh, bench-proxy.sh,
# instructions-proxy.sh, syscalls-proxy.sh). Source it after setting W, the run's scratch
# directory (and ROOT, the repository):
# - PIDS: append every background process; at exit each is stopped and waited for, and W removed;
# - need_tools CMD...: install the Debian packages (named like the commands) that are missing;
# - ngx_conf DIR BODY [MAIN]: an nginx.conf in DIR for one worker, no access log, temp files in
#   DIR, long keep-alive; BODY goes in the `http` block, MAIN in the main context;
# - one_hop_setup: for the per-request counting scripts: NGINX, OHA (installed if missing), BIN
#   and MESHC (MESH_BENCH_BIN / MESH_BENCH_MESHC, else built), the bench mesh in W, and an nginx
#   `return 200` backend on 127.0.0.1:18080 started, with the nginx reverse proxy of
#   bench-proxy.sh configured in W/nginxproxy (127.0.0.1:18081, one process) but not started.
# shellcheck shell=bash
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$W"
}
trap cleanup EXIT

need_tools() {
    local t need=()
    for t in "$@"; do
        command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] || need+=("$t")
    done
    [ ${#need[@]} -eq 0 ] && return 0
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}

ngx_conf() {
    mkdir -p "$1"
    cat >"$1/nginx.conf" <<EOC
daemon off; ${3:-} worker_processes 1; pid $1/nginx.pid; error_log $1/error.log;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $1; proxy_temp_path $1; fastcgi_temp_path $1;
  uwsgi_temp_path $1; scgi_temp_path $1; keepalive_requests 10000000; keepalive_timeout 300s;
  $2 }
EOC
}

one_hop_setup() {
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
    OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
    [ -x "$OHA" ] || { echo "installing oha"; cargo install oha --locked -q || return 2; OHA="$HOME/.cargo/bin/oha"; }
    local target=${CARGO_TARGET_DIR:-$ROOT/target}
    BIN=${MESH_BENCH_BIN:-$target/sidecar}
    MESHC=${MESH_BENCH_MESHC:-$target/release/meshc}
    if [ -z "${MESH_BENCH_BIN:-}" ]; then
        (cd "$ROOT" && cargo build -q --profile sidecar -p mesh-proxy) || return 2
    fi
    if ! [ -x "$MESHC" ]; then
        (cd "$ROOT" && cargo build -q -p meshc) || return 2
        MESHC="$target/debug/meshc"
    fi
    bash "$ROOT/scripts/bench-mesh.sh" "$MESHC" "$W" || return 2
    ngx_conf "$W/backend" "server { listen 127.0.0.1:18080; location / { return 200 'ok\n'; } }"
    ngx_conf "$W/nginxproxy" "upstream b { server 127.0.0.1:18080; keepalive 64; keepalive_requests 10000000; }
  server { listen 127.0.0.1:18081; location / { proxy_pass http://b; proxy_http_version 1.1;
    proxy_set_header Connection \"\"; } }" "master_process off;"
    "$NGINX" -c "$W/backend/nginx.conf" -p "$W/backend" &
    PIDS+=($!)
}
