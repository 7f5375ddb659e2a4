#!/usr/bin/env bash
# The crate boundaries ARCHITECTURE.md promises, checked on the resolved dependency tree:
# - mesh-proxy (the sidecar) never pulls in the compiler, its YAML parser, clap or miette's
#   renderer (the `miette` crate itself comes with cedar-policy, whose errors implement its
#   `Diagnostic` trait; its `fancy` feature is the renderer);
# - mesh-artifact and mesh-policy (plain-data crates shared with the sidecar) pull in no async
#   runtime, no YAML parser, no CLI parser and no diagnostic renderer either.
# Prints each offending crate with the path that brings it in; exit 1 if there is one.
set -u -o pipefail
cd "$(dirname "$0")/.." || exit 2
status=0
check() { # PACKAGE FORBIDDEN...
    local pkg=$1 tree bad
    shift
    tree=$(cargo tree --locked -q -p "$pkg" -e normal --prefix none) || { echo "cargo tree -p $pkg failed"; exit 2; }
    if cargo tree --locked -q -p "$pkg" -e normal,features -i miette --prefix none 2>/dev/null |
        grep -q 'miette feature "fancy'; then
        echo "error: \`$pkg\` turns on miette's renderer (feature \`fancy\`)"
        status=1
    fi
    for bad in "$@"; do
        if grep -q "^$bad v" <<<"$tree"; then
            echo "error: \`$pkg\` depends on \`$bad\`:"
            cargo tree --locked -q -p "$pkg" -e normal -i "$bad" | sed 's/^/    /'
            status=1
        fi
    done
}
check mesh-proxy meshc serde-saphyr clap clap_builder
check mesh-artifact meshc serde-saphyr clap clap_builder miette tokio
check mesh-policy meshc serde-saphyr clap clap_builder tokio
[ $status -eq 0 ] && echo "crate boundaries hold (mesh-proxy, mesh-artifact, mesh-policy)"
exit $status
