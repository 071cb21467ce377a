#!/usr/bin/env bash
# vmrun.sh CMD [ARGS...]: run CMD as root inside a throw-away qemu VM booted with Debian's stock kernel.
#
# Why: this machine's kernel has no ipip (and no dummy, gre...) module; Debian's kernel has them all as
# modules. The VM sees the host's / read-only over 9p with a tmpfs overlay on top, so host binaries, their
# libraries and the cargo target dir work as they are, and every write is thrown away with the VM.
# It has no NIC (-nic none): all packets stay inside the guest. /dev, /proc, /sys and /run are fresh
# (so no host netns is visible); the rest, /tmp included, is the host's, writable, writes discarded.
#
#   tools/vmrun/vmrun.sh ip -d link show tunl0
#   tools/vmrun/vmrun.sh target/debug/deps/vm_inner-HASH --test-threads=1
#   CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER=$PWD/tools/vmrun/vmrun.sh cargo test ...   (as a cargo runner)
#   tools/vmrun/vmrun.sh --check    exit 0 when a VM can be started here, else 1 with the reason on stderr
#
# Exit status: CMD's. 125 when the VM itself failed (missing qemu, no kernel, boot failure, timeout).
# Output: CMD's stdout and stderr, merged (one serial console), with plain "\n" line ends.
#
# Environment:
#   VMRUN_LOAD     modules modprobed at boot (default "ipip veth vxlan"); any other module is loaded on
#                  demand by the kernel (e.g. `ip link add type dummy|bridge|wireguard`, nft).
#   VMRUN_TIMEOUT  seconds before qemu is killed (default 300); then exit 125 with a message.
#   VMRUN_MEM      guest memory in MiB (default 512).  VMRUN_SMP  guest CPUs (default 1).
#   VMRUN_CACHE    kernel, modules and initramfs cache (default ${CARGO_TARGET_DIR:-<repo>/target}/vmrun-cache,
#                  so `cargo clean` removes it; ~160 MB). Filled on first use from Debian's apt repo
#                  (linux-image-amd64; `apt-get download`, never installed), ~10-15 s once.
#   VMRUN_KERNEL_PKG  kernel package to use instead of the one linux-image-amd64 depends on.
#   VMRUN_APPEND   extra kernel command line.  VMRUN_VERBOSE=1  kernel messages and boot steps on the console.
#   Passed into the guest: CARGO_*, VMTEST_*, RUST_*, PATH, HOME, TERM=dumb; the command runs in $PWD.
#
# Needs: apt-get install --no-install-recommends qemu-system-x86 busybox-static (tools/test.sh does it).
# No KVM: the /dev/kvm on these machines (nested kvm-pvm) cannot run a stock kernel, so TCG; ~2 s a boot.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${VMRUN_CACHE:-${CARGO_TARGET_DIR:-$REPO/target}/vmrun-cache}
LOAD=${VMRUN_LOAD-ipip veth vxlan}
TIMEOUT=${VMRUN_TIMEOUT:-300}
QEMU=qemu-system-x86_64
BUSYBOX=${VMRUN_BUSYBOX:-/bin/busybox}
# Modules that reach the 9p root: loaded by insmod from the initramfs (their dependencies are added).
BOOT_MODULES="virtio_pci 9pnet_virtio 9p overlay"

say() { echo "vmrun: $*" >&2; }
fail() { say "$*"; exit 125; }

# --- prerequisites -------------------------------------------------------------------------------------
check() {
  local ok=0
  if ! command -v "$QEMU" >/dev/null; then
    say "$QEMU is not installed (apt-get install --no-install-recommends qemu-system-x86)"; ok=1
  elif ! "$QEMU" --version >/dev/null 2>&1; then
    say "$QEMU does not run: $("$QEMU" --version 2>&1 | head -1)"; ok=1
  elif [ ! -e /usr/share/qemu/qboot.rom ] && [ ! -e /usr/share/seabios/qboot.rom ]; then
    say "qboot.rom is missing (package qemu-system-data)"; ok=1
  fi
  if [ ! -x "$BUSYBOX" ]; then
    say "$BUSYBOX is missing (apt-get install busybox-static)"; ok=1
  elif ldd "$BUSYBOX" >/dev/null 2>&1; then
    say "$BUSYBOX is dynamically linked; the initramfs needs busybox-static"; ok=1
  fi
  for t in dpkg-deb apt-get gzip flock timeout; do
    command -v "$t" >/dev/null || { say "$t is missing"; ok=1; }
  done
  command -v xz >/dev/null || command -v python3 >/dev/null || { say "xz (xz-utils) or python3 is needed"; ok=1; }
  return $ok
}
if [ "${1:-}" = --check ]; then check; exit; fi
[ $# -ge 1 ] || { echo "usage: $0 CMD [ARGS...] | --check" >&2; exit 125; }
check || fail "cannot start a VM here (see above)"

mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

# --- kernel + modules (once; flock so parallel runs share one download) ---------------------------------
exec 8>"$CACHE/.lock"
flock 8
rm -rf "$CACHE"/tmp.*   # left by a setup that was killed (we hold the lock: no setup is running)
TMP=
trap '[ -z "$TMP" ] || rm -rf "$TMP"' EXIT

kernel_pkg() {
  local pkg
  pkg=${VMRUN_KERNEL_PKG:-$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')}
  if [ -z "$pkg" ] && [ "$(id -u)" = 0 ]; then
    say "no linux-image-amd64 in the apt lists: apt-get update"
    apt-get update -qq >&2 || true
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  fi
  [ -n "$pkg" ] || fail "kernel package missing: apt-cache knows no linux-image-amd64 (run apt-get update, or set VMRUN_KERNEL_PKG)"
  echo "$pkg"
}

want=${VMRUN_KERNEL_PKG:-}
if [ ! -e "$CACHE/kernel/ready" ] || { [ -n "$want" ] && [ "$(awk '{print $1}' "$CACHE/kernel/ready")" != "$want" ]; }; then
  pkg=$(kernel_pkg)
  say "first use: fetching Debian's $pkg into $CACHE (once)"
  TMP=$(mktemp -d "$CACHE/tmp.XXXXXX")
  get() { (cd "$TMP" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null 2>"$TMP/apt.err"); }
  if ! get; then
    # Stale lists name a version the mirror no longer has: refresh them once.
    [ "$(id -u)" = 0 ] && apt-get update -qq >&2 && pkg=$(kernel_pkg) || true
    get || { cat "$TMP/apt.err" >&2; fail "kernel package missing: cannot download $pkg"; }
  fi
  deb=$(ls "$TMP"/*.deb)
  mkdir "$TMP/k"
  # Only what a network test VM can use: no sound, GPU, media, USB, storage HBAs, wireless, NIC drivers.
  ex=()
  for d in sound drivers/gpu drivers/media drivers/scsi drivers/infiniband drivers/usb drivers/iio \
           drivers/staging drivers/hwmon drivers/hid drivers/input drivers/comedi drivers/mtd drivers/video \
           drivers/bluetooth drivers/isdn drivers/ata drivers/mmc drivers/net/wireless drivers/net/ethernet \
           net/bluetooth net/mac80211 net/wireless lib/test_bpf.ko; do
    ex+=(--exclude="./lib/modules/*/kernel/$d")
  done
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$TMP/k" "${ex[@]}" --exclude=./usr ./boot ./lib
  rm -f "$deb"
  kver=$(ls "$TMP/k/lib/modules")
  "$BUSYBOX" depmod -b "$TMP/k" "$kver"        # the .deb ships no modules.dep/modules.alias
  # qemu boots the uncompressed ELF through its PVH entry point: ~2 s faster under TCG than the bzImage.
  vmlinuz=$TMP/k/boot/vmlinuz-$kver
  off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -1 | cut -d: -f1 || true)
  [ -n "$off" ] || fail "$vmlinuz: no XZ payload found"
  if command -v xz >/dev/null; then
    xz -dc --single-stream < <(tail -c +$((off + 1)) "$vmlinuz") > "$TMP/k/vmlinux"
  else  # no xz-utils: python's lzma (stops at the end of the stream, like --single-stream)
    python3 -c 'import lzma, sys; d = open(sys.argv[1], "rb").read()[int(sys.argv[2]):]
sys.stdout.buffer.write(lzma.LZMADecompressor().decompress(d))' "$vmlinuz" "$off" > "$TMP/k/vmlinux"
  fi
  [ "$(head -c 4 "$TMP/k/vmlinux" | tr -d '\177')" = ELF ] || fail "$vmlinuz: the payload is not an ELF kernel"
  rm -rf "$TMP/k/boot"
  echo "$pkg $kver" > "$TMP/k/ready"
  rm -rf "$CACHE/kernel" "$CACHE"/initrd-*
  mv "$TMP/k" "$CACHE/kernel"
  rm -rf "$TMP"; TMP=
fi
KVER=$(awk '{print $2}' "$CACHE/kernel/ready")
KMODS=$CACHE/kernel/lib/modules

# --- initramfs: static busybox, the modules that reach the 9p root, the guest init ----------------------
INITRD=$CACHE/initrd-$(cat "$HERE/init" "$BUSYBOX" <(echo "$BOOT_MODULES $KVER") | md5sum | cut -c1-12).gz
if [ ! -e "$INITRD" ]; then
  TMP=$(mktemp -d "$CACHE/tmp.XXXXXX")
  R=$TMP/root
  mkdir -p "$R"/{bin,dev,proc,sys,lib/modules,mods,lower,job,host,rw}
  cp "$BUSYBOX" "$R/bin/busybox"
  install -m 755 "$HERE/init" "$R/init"
  declare -A seen=()
  order=()
  add() { # module name -> its dependencies first, then itself (from modules.dep)
    local name=${1//-/_} rel deps d
    [ -z "${seen[$name]:-}" ] || return 0
    seen[$name]=1
    rel=$(awk -F: -v n="$name" '{m=$1; sub(/.*\//, "", m); sub(/\.ko.*$/, "", m); gsub(/-/, "_", m); if (m == n) {print; exit}}' "$KMODS/$KVER/modules.dep")
    if [ -z "$rel" ]; then
      grep -q "/${name}.ko\$" "$KMODS/$KVER/modules.builtin" 2>/dev/null && return 0
      fail "module $name is in neither modules.dep nor modules.builtin of $KVER"
    fi
    deps=${rel#*:}
    for d in $deps; do d=${d##*/}; add "${d%%.ko*}"; done
    cp "$KMODS/$KVER/${rel%%:*}" "$R/mods/"
    order+=("${rel%%:*}")
  }
  for m in $BOOT_MODULES; do add "$m"; done
  for m in "${order[@]}"; do echo "${m##*/}"; done > "$R/mods/order"
  (cd "$R" && find . -print0 | "$BUSYBOX" cpio -o -H newc -0 2>/dev/null) | gzip -1 > "$TMP/initrd.gz"
  rm -f "$CACHE"/initrd-*.gz   # older versions of init (a VM that still runs has its copy open)
  mv "$TMP/initrd.gz" "$INITRD"
  rm -rf "$TMP"; TMP=
fi
exec 8>&-   # setup done: unlock, and keep the lock fd out of qemu

# --- the job: environment, cwd and argv, replayed by bash in the guest ----------------------------------
JOB=$(mktemp -d "${TMPDIR:-/tmp}/vmrun-job.XXXXXX")
QPID=
cleanup() {
  [ -z "$QPID" ] || kill -TERM "$QPID" 2>/dev/null || true
  rm -rf "$JOB"
  [ -z "$TMP" ] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM HUP
{
  printf 'export PATH=%q\n' "$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  printf 'export HOME=%q TMPDIR=/tmp TERM=dumb USER=root LOGNAME=root\n' "${HOME:-/root}"
  while IFS= read -r v; do
    printf 'export %s=%q\n' "$v" "${!v}"
  done < <(compgen -e | grep -E '^(CARGO_|VMTEST_|RUST_)' || true)
  printf 'cd %q || exit 125\n' "$PWD"
  printf 'exec'
  printf ' %q' "$@"
  echo
} > "$JOB/cmd.sh"
printf '%s\n' "$LOAD" > "$JOB/load"
printf '%s\n' "$KMODS" > "$JOB/kmods"   # in the guest: /lower$KMODS
[ "${VMRUN_VERBOSE:-0}" = 0 ] || : > "$JOB/verbose"

# --- boot ----------------------------------------------------------------------------------------------
# TCG (see the header); -M pc, not microvm: microvm has no HPET/ACPI PM timer, and under TCG its TSC
# calibration against the PIT sometimes fails and the guest hangs. qboot: fast, prints nothing.
# isa-debug-exit: the guest init leaves qemu at once after writing $JOB/rc.
append="console=ttyS0 panic=-1 oops=panic"
if [ "${VMRUN_VERBOSE:-0}" = 0 ]; then append+=" quiet loglevel=1"; fi
append+=" ${VMRUN_APPEND:-}"
timeout -k 5 "$TIMEOUT" "$QEMU" -accel tcg -M pc -smp "${VMRUN_SMP:-1}" -m "${VMRUN_MEM:-512}" \
  -bios qboot.rom -display none -vga none -nic none -no-reboot -monitor none -serial stdio \
  -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
  -kernel "$CACHE/kernel/vmlinux" -initrd "$INITRD" -append "$append" \
  -fsdev local,id=root,path=/,security_model=none,readonly=on,multidevs=remap \
  -device virtio-9p-pci,fsdev=root,mount_tag=hostroot \
  -fsdev local,id=job,path="$JOB",security_model=none \
  -device virtio-9p-pci,fsdev=job,mount_tag=job \
  </dev/null &
QPID=$!
set +e
wait "$QPID"
q=$?
set -e
QPID=
if [ -s "$JOB/rc" ]; then
  rc=$(cat "$JOB/rc")
  [ "$rc" -ge 0 ] 2>/dev/null || fail "the guest wrote a bad status: $rc"
  exit "$rc"
fi
case $q in
  124|137) fail "TIMEOUT: the VM did not finish within ${TIMEOUT}s (VMRUN_TIMEOUT); qemu was killed" ;;
  *) fail "the VM stopped without a result (qemu exit status $q; VMRUN_VERBOSE=1 shows the boot)" ;;
esac
