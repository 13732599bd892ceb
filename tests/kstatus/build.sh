#!/usr/bin/env bash
# Builds tests/kstatus (kstatus from sigs.k8s.io/cli-utils, pinned in go.mod/go.sum) into a cache outside
# the repository, keyed by its sources, and prints the binary's path. A second run with the same sources
# does nothing. Kept apart from tests/cluster/build.sh so a change here never rebuilds the control plane.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# The toolchain rule of tests/cluster/build.sh: Go 1.26, fetched through the module proxy when the local
# Go is another version.
case "$(GOTOOLCHAIN=local go env GOVERSION)" in
  go1.26*) export GOTOOLCHAIN=local ;;
  *) export GOTOOLCHAIN=go1.26.8 ;;
esac

key=$(cat "$here"/go.mod "$here"/go.sum "$here"/main.go | sha256sum | cut -c1-16)
cache=${BOSUN_CACHE:-$HOME/.cache/bosun}
out="$cache/kstatus-$key/kstatus"
if [ -x "$out" ]; then echo "$out"; exit 0; fi

# Concurrent test sessions each build into their own file and publish it with an atomic rename.
mkdir -p "$(dirname "$out")"
partial=$(mktemp "$out.partial.XXXXXX")
trap 'rm -f "$partial"' EXIT
(cd "$here" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" -o "$partial" .)
chmod 755 "$partial"
mv -f "$partial" "$out"
echo "$out"
