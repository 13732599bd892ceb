#!/usr/bin/env bash
# Builds the krew release of kubectl bosun into dist/krew/ (or $1):
#   kubectl-bosun_v<version>.tar.gz  the launcher (krew/kubectl-bosun), the bosun wheel, and requirements.txt
#                                    exported from uv.lock with hashes
#   bosun.yaml                       krew/bosun.yaml with the version and the archive's sha256 filled in
# The archive's entries have fixed times, owners and order, so one source tree always gives one sha256.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd -P)
out=$(mkdir -p "${1:-$root/dist/krew}" && cd "${1:-$root/dist/krew}" && pwd -P)
version=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
  "$root/pyproject.toml")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-315532800}  # 1980-01-01: what zip-based wheels can express
(cd "$root" && uv build --quiet --wheel --out-dir "$stage" .)
(cd "$root" && uv export --quiet --frozen --no-dev --no-emit-project --no-header --format requirements-txt \
  --output-file "$stage/requirements.txt")
sed "s/@VERSION@/$version/g" "$root/krew/kubectl-bosun" > "$stage/kubectl-bosun"
chmod 0755 "$stage/kubectl-bosun"

archive="$out/kubectl-bosun_v$version.tar.gz"
(cd "$stage" && tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
  -cf - kubectl-bosun "bosun-$version-py3-none-any.whl" requirements.txt) | gzip -n > "$archive"
sha=$(sha256sum "$archive" | cut -d' ' -f1)
sed -e "s/@VERSION@/$version/g" -e "s/@SHA256@/$sha/g" "$root/krew/bosun.yaml" > "$out/bosun.yaml"
echo "$archive"
echo "sha256 $sha"
