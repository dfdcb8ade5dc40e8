#!/usr/bin/env bash
# Build duro's container image: a static linux binary from scripts/release.sh, in an
# image FROM scratch (deploy/docker/Dockerfile). Nothing is pulled from a registry, so
# it builds offline.
#
#   scripts/docker-image.sh [VERSION]
#
# VERSION defaults as in scripts/release.sh. The image is tagged duro:VERSION and
# duro:latest, or only $IMAGE when set (e.g. IMAGE=registry.example.com/duro:v0.2.0).
# The binary is for this machine's architecture, or $ARCH (amd64, arm64).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "docker-image.sh: $*" >&2; exit 1; }
command -v docker >/dev/null || die "docker is not on PATH"

version=$(scripts/release.sh --print-version "$@")
arch=${ARCH:-$(go env GOARCH)}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

OUT=$ctx/bin PLATFORMS=linux/$arch scripts/release.sh "$version" >/dev/null
mv "$ctx/bin/duro-$version-linux-$arch" "$ctx/duro"
rm -rf "$ctx/bin"
mkdir "$ctx/data"
cp deploy/docker/Dockerfile "$ctx/"

commit=$(git rev-parse HEAD)
git diff --quiet HEAD -- || commit+=-dirty
names=("duro:$version" duro:latest)
[[ -n ${IMAGE:-} ]] && names=("$IMAGE")
tags=()
for n in "${names[@]}"; do tags+=(-t "$n"); done
docker build --platform "linux/$arch" --build-arg VERSION="$version" --build-arg COMMIT="$commit" \
  "${tags[@]}" "$ctx"
echo "built ${names[*]} (duro $version, linux/$arch)"
