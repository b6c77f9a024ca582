#!/bin/sh
# Builds the zautic-forwarder binary the way the image ships it: static
# (CGO_ENABLED=0), reproducible paths (-trimpath), stripped, with the version
# and commit stamped into main.version and main.commit. The Dockerfile runs
# this script and test/image_test.go calls it, so both build the same binary.
#
# Usage: scripts/build.sh [OUTPUT]        (default OUTPUT: ./zautic-forwarder)
# Environment: VERSION (default: git describe, else "dev"),
#              COMMIT  (default: git rev-parse HEAD, else left to go's build info).
set -eu

out=${1:-zautic-forwarder}
case "$out" in
/*) ;;
*) out="$PWD/$out" ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)

version=${VERSION:-$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=${COMMIT:-$(git -C "$root" rev-parse HEAD 2>/dev/null || true)}

ldflags="-s -w -X main.version=$version"
if [ -n "$commit" ]; then
	ldflags="$ldflags -X main.commit=$commit"
fi

cd "$root"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out" .
