#!/usr/bin/env bash
# Same-minute A/B of two meshc binaries: this VM's speed drifts by up to 1.5x from minute to
# minute, so two binaries are only comparable when run alternately in the same minutes.
#
#   scripts/ab-meshc.sh OLD NEW RUNS ARGS...     e.g.
#   scripts/ab-meshc.sh /tmp/meshc-old target/release/meshc 12 check /tmp/mesh-5000 --format concise
#   scripts/ab-meshc.sh /tmp/meshc-old target/release/meshc 7 build /tmp/mesh-5000 --out @OUT@
#
# `@OUT@` in ARGS becomes a new directory under $AB_OUT (default /tmp/meshc-ab) for every run.
# The directories are kept until the series ends and removed afterwards: on ext4 without a
# journal, files created just after many were deleted are slow to create (see BENCHMARKS.md).
# AB_KEEP=1 keeps them (for a series of series: ext4 skips inodes freed in the last 1-5 minutes).
# Prints each binary's wall and CPU (user + sys) times, sorted, and its peak RSS.
set -euo pipefail
[ $# -ge 4 ] || { sed -n 2,13p "$0"; exit 2; }
OLD=$1 NEW=$2 RUNS=$3
shift 3
AB_OUT=${AB_OUT:-/tmp/meshc-ab}
mkdir -p "$AB_OUT"
T=$(mktemp -d)
if [ "${AB_KEEP:-0}" = 1 ]; then
    trap 'rm -rf "$T"' EXIT
else
    trap 'rm -rf "$T" "$AB_OUT"' EXIT
fi
for _ in $(seq "$RUNS"); do
    for b in old new; do
        bin=$OLD
        [ "$b" = new ] && bin=$NEW
        args=("$@")
        args=("${args[@]//@OUT@/$AB_OUT/$b-$RANDOM$RANDOM}")
        /usr/bin/time -f "%e %U %S %M" -a -o "$T/$b" "$bin" "${args[@]}" >/dev/null 2>&1
    done
done
for b in old new; do
    wall=$(awk '{print $1}' "$T/$b" | sort -n | tr '\n' ' ')
    cpu=$(awk '{printf "%.2f\n", $2 + $3}' "$T/$b" | sort -n | tr '\n' ' ')
    rss=$(awk '{print int($4 / 1024)}' "$T/$b" | sort -n | tail -1)
    echo "$b wall: $wall| cpu: $cpu| peak RSS ${rss} MB"
done
