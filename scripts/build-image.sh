#!/usr/bin/env bash
# Builds the operator image with buildah: a statically linked release binary of `iter8`
# (glibc, `-C target-feature=+crt-static`) in an image FROM scratch (deploy/Containerfile).
#
#   scripts/build-image.sh [IMAGE]    default: the install bundle's image reference
#
# The static binary is built in its own target folder (target/static) so that the flag does
# not invalidate the normal build. Prints the image reference.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
image=${1:-localhost/iter8-rs/iter8:$version}

if ! command -v buildah >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends buildah >/dev/null
fi

target=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --bin iter8 \
  --target "$target" --target-dir target/static >&2
binary="target/static/$target/release/iter8"
if ldd "$binary" >/dev/null 2>&1 && ! ldd "$binary" 2>&1 | grep -q "not a dynamic executable\|statically linked"; then
  echo "build-image: $binary is not statically linked" >&2
  exit 1
fi

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$binary" "$context/iter8"
cp /etc/ssl/certs/ca-certificates.crt "$context/ca-certificates.crt"
# vfs and chroot isolation: this works in a sandbox without overlayfs or user namespaces.
buildah --storage-driver vfs build --quiet --isolation chroot \
  -f deploy/Containerfile -t "$image" "$context" >&2
echo "$image"
