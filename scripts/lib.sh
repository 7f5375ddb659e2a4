# Shared by the scripts that start servers on loopback (demo.sh, bench-proxy.sh,
# instructions-proxy.sh). Source it after setting W, the run's scratch directory:
# - PIDS: append every background process; at exit each is stopped and waited for, and W removed;
# - need_tools CMD...: install the Debian packages (named like the commands) that are missing;
# - ngx_conf DIR BODY [MAIN]: an nginx.conf in DIR for one worker, no access log, temp files in
#   DIR, long keep-alive; BODY goes in the `http` block, MAIN in the main context.
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
