#!/usr/bin/env bash
# Build duro's release binaries: one per platform, static (CGO_ENABLED=0, no libc to
# match on the target), stamped with the version and commit `duro --version` prints and
# /metrics exports as duro_build_info, and a SHA256SUMS file over them.
#
#   scripts/release.sh [VERSION]
#   scripts/release.sh --print-version     print the version it would stamp, and exit
#
# VERSION (or $VERSION) is what the build calls itself. Releases are tagged vX.Y.Z and
# built from that tag; by default it is `git describe --tags --match 'v[0-9]*' --dirty`,
# or v0.0.0-dev-<commit> before the first tag. The commit is HEAD's, with "-dirty" when
# tracked files have changes.
#
# Environment:
#   PLATFORMS  space-separated GOOS/GOARCH (default: linux/amd64 linux/arm64
#              darwin/amd64 darwin/arm64)
#   OUT        output directory (default: dist/VERSION); it is emptied first
#
# Output: $OUT/duro-VERSION-GOOS-GOARCH for each platform, and $OUT/SHA256SUMS (check
# with `sha256sum -c SHA256SUMS`, or `shasum -a 256 -c SHA256SUMS` on macOS).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "release.sh: $*" >&2; exit 1; }
command -v go >/dev/null || die "go is not on PATH"
command -v git >/dev/null || die "git is not on PATH"

commit=$(git rev-parse HEAD) || die "not in a git checkout"
git diff --quiet HEAD -- || commit+=-dirty

print_only=
if [[ ${1:-} == --print-version ]]; then print_only=1; shift; fi
VERSION=${1:-${VERSION:-}}
if [[ -z $VERSION ]]; then
  VERSION=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null) ||
    VERSION=v0.0.0-dev-$(git rev-parse --short=12 HEAD)${commit#"$(git rev-parse HEAD)"}
fi
# The version names files and image tags: keep it to what both accept.
[[ $VERSION =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "version $VERSION: use letters, digits, '.', '_' and '-'"
if [[ -n $print_only ]]; then echo "$VERSION"; exit 0; fi

PLATFORMS=${PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}
OUT=${OUT:-dist/$VERSION}

pkg=github.com/duro-db/duro/internal/buildinfo
# -trimpath and -buildvcs=false: the binary does not depend on where it was built or
# on the go command reading git (the commit is stamped here, which also works in a
# worktree or an exported tree). -s -w drop the symbol tables; panics still print
# file:line.
ldflags="-s -w -X $pkg.version=$VERSION -X $pkg.commit=$commit"

rm -rf "$OUT"
mkdir -p "$OUT"
for p in $PLATFORMS; do
  os=${p%/*} arch=${p#*/}
  [[ -n $os && -n $arch && $p == */* ]] || die "platform $p: want GOOS/GOARCH"
  bin=duro-$VERSION-$os-$arch
  echo "building $OUT/$bin"
  CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$OUT/$bin" ./cmd/duro
done

(
  cd "$OUT"
  if command -v sha256sum >/dev/null; then
    sha256sum duro-* >SHA256SUMS
  else
    shasum -a 256 duro-* >SHA256SUMS
  fi
)
echo "wrote $OUT/SHA256SUMS"
cat "$OUT/SHA256SUMS"
