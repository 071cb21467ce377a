#!/usr/bin/env bash
# Builds the tortie container image (deploy/image/Dockerfile) offline, and checks it.
#
#   tools/image.sh                 build the static binary, the image, an OCI archive, check all
#   tools/image.sh --no-build      reuse the static binary already in target/image
#   TAG=registry.example/tortie:1 tools/image.sh
#   IMAGE_TARGET_DIR=DIR tools/image.sh     the static build's target directory (target/image)
#
# Steps: a static release build (RUSTFLAGS=-C target-feature=+crt-static, --target
# x86_64-unknown-linux-gnu, under `nice`, in its own target directory target/image so it never
# waits on, or blocks, the dev builds' lock), checked static with `file` and `ldd`; a build
# context with bin/tortie (stripped), bin/tortie-cni -> tortie, Debian's static busybox, nft
# with the libraries it loads (felix runs it for natOutgoing); `buildah bud`
# (storage driver vfs, isolation chroot: no daemon, no registry, works as root in a container);
# then the image's files are listed from a mounted working container and compared with what
# must be there, its entrypoint is checked, and tortie and nft run inside it (`--version`,
# `apply --dry-run` of the base manifests' resources, `nft --version`, CNI VERSION through the
# tortie-cni link). The image is pushed to
# an OCI archive, target/image/tortie-<version>.oci.tar, for `ctr -n k8s.io images import`.
#
# Not part of tools/test.sh: the release build alone takes many minutes on a 2-CPU machine.
# Needs root and Debian's buildah, file, binutils, busybox-static and nftables (installed when
# missing).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=1
for a in "$@"; do
  case "$a" in
    --no-build) BUILD=0 ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "tools/image.sh: unknown argument $a (see --help)" >&2; exit 2 ;;
  esac
done

fail() {
  echo "tools/image.sh: $*" >&2
  exit 1
}

VERSION="$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -1)"
[ -n "$VERSION" ] || fail "no version in Cargo.toml's [workspace.package]"
TAG="${TAG:-localhost/tortie:$VERSION}"
TARGET=x86_64-unknown-linux-gnu
TARGET_DIR="${IMAGE_TARGET_DIR:-$PWD/target/image}"
BIN="$TARGET_DIR/$TARGET/release/tortie"
ARCHIVE="$TARGET_DIR/tortie-$VERSION.oci.tar"
BUILDAH=(buildah --storage-driver vfs)
export BUILDAH_ISOLATION=chroot

need=()
for p in buildah file binutils busybox-static nftables; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || fail "missing packages: ${need[*]} (run as root to install them)"
  echo "tools/image.sh: installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# 1. The static binary.
if [ "$BUILD" = 1 ]; then
  echo "tools/image.sh: static release build (target/image; this takes a while)"
  CARGO_TARGET_DIR="$TARGET_DIR" RUSTFLAGS="-C target-feature=+crt-static" \
    nice -n 19 cargo build --release --locked --target "$TARGET" -p tortie --bin tortie
fi
[ -x "$BIN" ] || fail "$BIN does not exist: run without --no-build"
kind="$(file -b "$BIN")"
case "$kind" in
  *"statically linked"* | *"static-pie linked"*) ;;
  *) fail "$BIN is not static: file says: $kind" ;;
esac
if ldd_out="$(ldd "$BIN" 2>&1)"; then
  case "$ldd_out" in
    *"statically linked"*) ;;
    *) fail "$BIN is not static: ldd says: $ldd_out" ;;
  esac
else
  case "$ldd_out" in
    *"not a dynamic executable"*) ;;
    *) fail "ldd $BIN failed: $ldd_out" ;;
  esac
fi
echo "tools/image.sh: $BIN: $kind"
echo "tools/image.sh: ldd: $ldd_out"

# 2. The build context.
ctx="$(mktemp -d)"
ctr=""
cleanup() {
  if [ -n "$ctr" ]; then
    "${BUILDAH[@]}" umount "$ctr" >/dev/null 2>&1 || true
    "${BUILDAH[@]}" rm "$ctr" >/dev/null 2>&1 || true
  fi
  rm -rf "$ctx"
}
trap cleanup EXIT
mkdir "$ctx/bin"
# The release profile keeps debug info (for profiling benches): the image does without it.
strip -o "$ctx/bin/tortie" "$BIN"
ln -s tortie "$ctx/bin/tortie-cni"
cp /bin/busybox "$ctx/busybox"
case "$(file -b "$ctx/busybox")" in
  *"statically linked"* | *"static-pie linked"*) ;;
  *) fail "/bin/busybox is not static (is busybox-static installed?)" ;;
esac
# nft and the libraries it loads (felix runs `nft` for natOutgoing), at their own paths.
nft_files=(/usr/sbin/nft $(ldd /usr/sbin/nft | grep -o '/[^ ]*'))
for f in "${nft_files[@]}"; do
  [ -f "$f" ] || fail "$f (for nft) does not exist"
  mkdir -p "$ctx/nft$(dirname "$f")"
  cp -L "$f" "$ctx/nft$f"
done

# 3. The image.
"${BUILDAH[@]}" bud --isolation chroot --layers=false -f deploy/image/Dockerfile -t "$TAG" "$ctx"

# 4. Its files, its entrypoint, tortie running inside it.
ctr="$("${BUILDAH[@]}" from "$TAG")"
mnt="$("${BUILDAH[@]}" mount "$ctr")"
listing="$(cd "$mnt" && find . -mindepth 1 \( -type f -o -type l \) -printf '%p %y %l\n' | sort)"
echo "tools/image.sh: files in $TAG:"
(cd "$mnt" && find . -mindepth 1 -printf '  %M %10s %p %l\n' | sort -k4)
expected="$(
  {
    printf '%s\n' './bin/busybox f ' './usr/local/bin/tortie f ' './usr/local/bin/tortie-cni l tortie'
    for f in "${nft_files[@]}"; do printf '.%s f \n' "$f"; done
  } | sort -u
)"
[ "$listing" = "$expected" ] || fail "the image's files differ from what it must hold:
$listing
expected:
$expected"
cmp -s "$mnt/usr/local/bin/tortie" "$ctx/bin/tortie" || fail "the image's tortie is not the stripped $BIN"
"${BUILDAH[@]}" umount "$ctr" >/dev/null
entry="$("${BUILDAH[@]}" inspect --type image --format '{{.OCIv1.Config.Entrypoint}}' "$TAG")"
[ "$entry" = '[/usr/local/bin/tortie agent]' ] || fail "entrypoint is $entry"
echo "tools/image.sh: entrypoint $entry"
"${BUILDAH[@]}" run --isolation chroot "$ctr" -- /usr/local/bin/tortie --version
"${BUILDAH[@]}" run --isolation chroot -v "$PWD/deploy/base/resources:/resources:ro" "$ctr" -- \
  /usr/local/bin/tortie apply --dry-run -f /resources/
"${BUILDAH[@]}" run --isolation chroot "$ctr" -- nft --version
version="$("${BUILDAH[@]}" run --isolation chroot --env CNI_COMMAND=VERSION "$ctr" -- /usr/local/bin/tortie-cni </dev/null)"
case "$version" in
  *'"supportedVersions"'*) echo "tools/image.sh: tortie-cni VERSION: $version" ;;
  *) fail "tortie-cni (the link) did not answer CNI VERSION: $version" ;;
esac
"${BUILDAH[@]}" run --isolation chroot "$ctr" -- /bin/busybox sh -c 'test -L /usr/local/bin/tortie-cni && echo "busybox sh runs; tortie-cni -> $(readlink /usr/local/bin/tortie-cni)"'

# 5. An archive to carry it to a cluster.
rm -f "$ARCHIVE"
"${BUILDAH[@]}" push "$TAG" "oci-archive:$ARCHIVE:$TAG"
echo "tools/image.sh: $TAG built and checked; archive $ARCHIVE ($(du -h "$ARCHIVE" | cut -f1))"
