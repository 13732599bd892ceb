#!/usr/bin/env bash
# Builds the local control plane from Go modules (Kubernetes, etcd, kwok, helm) into a cache outside
# the repository, keyed by the pinned go.mod/go.sum files, and prints the directory holding the binaries.
# A second run with the same pins does nothing. Go 1.26 is required: Go 1.27 enables jsonv2 by default,
# which breaks kube-apiserver 1.36's /openapi/v2 (see shared/research/cluster.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
K8S_VERSION=v1.36.3

# Go 1.26 is required; when the local toolchain is another version, Go fetches 1.26 itself through the
# module proxy (golang.org/toolchain), so nothing is downloaded from anywhere else.
GO_TOOLCHAIN=go1.26.8
case "$(GOTOOLCHAIN=local go env GOVERSION)" in
  go1.26*) export GOTOOLCHAIN=local ;;
  *) export GOTOOLCHAIN=$GO_TOOLCHAIN ;;
esac

V=k8s.io/component-base/version
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
k8s_ldflags="-s -w -X $V.gitMajor=1 -X $V.gitMinor=$minor -X $V.gitVersion=$K8S_VERSION -X $V.gitTreeState=clean"
k8s_ldflags="$k8s_ldflags -X $V.buildDate=1970-01-01T00:00:00Z"

# helm with the ldflags of helm's own Makefile: its version, and the Kubernetes version `helm template` and
# `helm lint` assume without --kube-version (major = client-go's major + 1, minor = client-go's minor);
# without them helm assumes 1.20, which fails the chart's kubeVersion. The module zip carries no git
# commit, so version.gitCommit stays empty.
H=helm.sh/helm/v3
helm_version=$(cd "$here/helm" && go list -m -f '{{.Version}}' $H)
client_go=$(cd "$here/helm" && go list -m -f '{{.Version}}' k8s.io/client-go)
IFS=. read -r cg_major cg_minor _ <<<"${client_go#v}"
helm_ldflags="-s -w -X $H/internal/version.version=$helm_version -X $H/internal/version.gitTreeState=clean"
for pkg in pkg/chartutil pkg/lint/rules; do
  helm_ldflags="$helm_ldflags -X $H/$pkg.k8sVersionMajor=$((cg_major + 1)) -X $H/$pkg.k8sVersionMinor=$cg_minor"
done

# The cache key covers the pins and every ldflag, so changing either rebuilds; bump BUILD_REV when this
# script changes what it produces in any other way.
BUILD_REV=1
key=$( { cat "$here"/{k8s,etcd,kwok,helm}/go.{mod,sum}; echo "$K8S_VERSION $BUILD_REV $k8s_ldflags $helm_ldflags"; } \
  | sha256sum | cut -c1-16)
cache=${BOSUN_CACHE:-$HOME/.cache/bosun}
out="$cache/bin-$key"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok helm)

complete() { for b in "${binaries[@]}"; do [ -x "$out/$b" ] || return 1; done; }
if complete; then echo "$out"; exit 0; fi

# Test sessions may start clusters at the same moment: each build writes its own directory and the first
# to finish publishes it, so no build deletes binaries another one (or a running cluster) uses.
mkdir -p "$cache"
partial=$(mktemp -d "$out.partial.XXXXXX")
trap 'rm -rf "$partial"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
start=$(date +%s)
log() { echo "build.sh: $* ($(( $(date +%s) - start ))s)" >&2; }

(cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$partial/etcd" go.etcd.io/etcd/server/v3) && log "etcd built"
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  (cd "$here/k8s" && go build -trimpath -ldflags "$k8s_ldflags" -o "$partial/$cmd" "k8s.io/kubernetes/cmd/$cmd")
  log "$cmd built"
done
(cd "$here/kwok" && go build -trimpath -ldflags "-s -w" -o "$partial/kwok" sigs.k8s.io/kwok/cmd/kwok) && log "kwok built"
(cd "$here/helm" && go build -trimpath -ldflags "$helm_ldflags" -o "$partial/helm" $H/cmd/helm) && log "helm built"

# kwok's stage definitions ship inside its module; copy the ones the cluster uses next to the binary.
kwok_dir=$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
mkdir -p "$partial/kwok-stages"
for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
         pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
  cp "$kwok_dir/kustomize/stage/$f" "$partial/kwok-stages/$(basename "$f")"
done
chmod -R u+w,go+rX "$partial"
if [ -e "$out" ] && ! complete; then rm -rf "$out"; fi  # a broken earlier attempt
mv -T "$partial" "$out" 2>/dev/null || complete || { echo "build.sh: cannot publish $out" >&2; exit 1; }
log "all binaries in $out"
echo "$out"
