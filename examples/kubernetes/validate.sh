#!/usr/bin/env bash
# Offline validation of the Kubernetes example (no cluster needed):
#  1. `meshc build --configmap` of ./mesh must equal the committed generated/configmap.yaml;
#  2. every manifest and the ConfigMap pass `kubernetes-validate --strict` (PyPI) for the oldest
#     and newest Kubernetes versions we claim (native sidecars need 1.29+).
# Installs kubernetes-validate into a virtualenv under ${XDG_CACHE_HOME:-~/.cache} when missing.
# Usage: examples/kubernetes/validate.sh [--update]   (--update rewrites generated/configmap.yaml)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
KV_VERSION=1.37.0
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/meshc-kubernetes-validate-$KV_VERSION"
KV="$VENV/bin/kubernetes-validate"
if ! [ -x "$KV" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "kubernetes-validate==$KV_VERSION"
fi

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
MESHC="${CARGO_TARGET_DIR:-$ROOT/target}/debug/meshc"
# Reuse the binary the tests or e2e/run.sh built; build it only when missing.
[ -x "$MESHC" ] || (cd "$ROOT" && cargo build -q -p meshc -p mesh-proxy)
"$MESHC" build "$HERE/mesh" --out "$T/out" --configmap mesh-artifacts --configmap-namespace shop >/dev/null 2>&1
if [ "${1:-}" = --update ]; then
    mkdir -p "$HERE/generated"
    cp "$T/out/configmap.yaml" "$HERE/generated/configmap.yaml"
fi
if ! cmp -s "$T/out/configmap.yaml" "$HERE/generated/configmap.yaml"; then
    echo "generated/configmap.yaml is stale: run examples/kubernetes/validate.sh --update"
    diff -u "$HERE/generated/configmap.yaml" "$T/out/configmap.yaml" | head -20
    exit 1
fi
for k in 1.29.0 "$KV_VERSION"; do
    "$KV" --strict --quiet -k "$k" "$HERE"/manifests/*.yaml "$HERE/generated/configmap.yaml"
    echo "kubernetes-validate --strict -k $k: $(ls "$HERE"/manifests/*.yaml | wc -l) manifests + generated/configmap.yaml valid"
done
