#!/usr/bin/env bash
# make demo: the local control plane at work (the operator flow is added as it lands).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(bash tests/cluster/build.sh)
export PATH="$bin:$PATH" KUBECONFIG="$PWD/.cluster/kubeconfig"
show() { printf '\n$ %s\n' "$*"; "$@"; }

show kubectl get nodes
kubectl create namespace shop --dry-run=client -o yaml | kubectl apply -f - >/dev/null
printf '\n$ kubectl -n shop create deployment web --image=registry.example/web:1.0 --replicas=3\n'
kubectl -n shop create deployment web --image=registry.example/web:1.0 --replicas=3 --dry-run=client -o yaml \
  | kubectl apply -f -
show kubectl -n shop rollout status deployment/web --timeout=90s
show kubectl -n shop get pods -o wide
