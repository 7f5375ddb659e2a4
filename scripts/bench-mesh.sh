#!/usr/bin/env bash
# Write the proxy benchmarks' mesh into DIR and compile it with MESHC:
#   scripts/bench-mesh.sh MESHC DIR   ->  DIR/mesh (source), DIR/art (artifacts), DIR/certs
# Two sidecars: `backend` (inbound 18111, outbound 18112, admin 18113, app 127.0.0.1:18080) and
# `client` (18121-18123) whose egress is `backend`; a `permissive` mesh (plaintext accepted
# inbound), one Cedar `permit` for everyone, and 10,001 routes on `backend`: 100 MeshRoutes x 100
# `Exact` rules plus the catch-all the benchmarks' requests hit.
# Used by scripts/bench-proxy.sh and scripts/instructions-proxy.sh.
set -u -o pipefail
MESHC=$1
D=$2
mkdir -p "$D/mesh"
cat >"$D/mesh/mesh.yaml" <<'EOF'
apiVersion: meshc.dev/v1alpha1
kind: Mesh
metadata:
  name: bench
spec:
  trustDomain: bench.local
  mtls:
    mode: permissive
  authorization:
    mode: enforce
EOF
cat >"$D/mesh/services.yaml" <<'EOF'
apiVersion: meshc.dev/v1alpha1
kind: MeshService
metadata:
  name: backend
spec:
  ports:
    - {name: http, port: 80, protocol: http}
  endpoints:
    - {address: 127.0.0.1, port: 18111}
---
apiVersion: meshc.dev/v1alpha1
kind: MeshService
metadata:
  name: client
spec:
  ports:
    - {name: http, port: 80, protocol: http}
  endpoints:
    - {address: 127.0.0.1, port: 18121}
---
apiVersion: meshc.dev/v1alpha1
kind: Sidecar
metadata:
  name: backend
spec:
  service: backend
  listeners: {inbound: 18111, outbound: 18112, admin: 18113}
  app: {port: 18080}
  egress: []
---
apiVersion: meshc.dev/v1alpha1
kind: Sidecar
metadata:
  name: client
spec:
  service: client
  listeners: {inbound: 18121, outbound: 18122, admin: 18123}
  app: {port: 18120}
  egress: [backend]
EOF
cat >"$D/mesh/policies.cedar" <<'EOF'
@id("anyone-reads-backend")
permit (principal, action, resource == Service::"default/backend");
EOF
# 100 routes x 100 Exact rules, and a catch-all route that the benchmark's requests hit
python3 - "$D/mesh/routes.yaml" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    for r in range(100):
        f.write(f"---\napiVersion: meshc.dev/v1alpha1\nkind: MeshRoute\nmetadata:\n  name: r{r:03d}\n"
                "spec:\n  parentRefs:\n    - name: backend\n      port: 80\n  rules:\n")
        for j in range(100):
            f.write(f"    - matches:\n        - path: {{type: Exact, value: /api/{r}/{j}}}\n"
                    "      backendRefs:\n        - {name: backend, port: 80}\n")
    f.write("---\napiVersion: meshc.dev/v1alpha1\nkind: MeshRoute\nmetadata:\n  name: zz-default\n"
            "spec:\n  parentRefs:\n    - name: backend\n      port: 80\n  rules:\n"
            "    - backendRefs:\n        - {name: backend, port: 80}\n")
EOF
"$MESHC" build "$D/mesh" --out "$D/art" >/dev/null 2>&1 || { echo "meshc build failed"; exit 2; }
"$MESHC" certs "$D/mesh" --out "$D/certs" >/dev/null 2>&1 || exit 2
