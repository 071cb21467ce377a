#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, builds once, runs every test.
#   tools/test.sh            everything
#   FUZZ_SECONDS=0 tools/test.sh   skip the bounded fuzz run
set -euo pipefail
cd "$(dirname "$0")/.."

# Real peers and tools the integration tests use (Debian packages).
PACKAGES=(bird2 gobgpd frr exabgp etcd-server etcd-client openssl iproute2 iputils-ping tcpdump qemu-system-x86 busybox-static)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "tools/test.sh: missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "tools/test.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The peers the interop tests run against.
echo "tools/test.sh: peers: $(bird --version 2>&1 | head -1); $(gobgpd --version 2>&1 | head -1); $(/usr/lib/frr/bgpd --version 2>&1 | head -1); $(exabgp --version 2>&1 | head -1); $(etcd --version 2>&1 | head -1)"

# One build of every target in the dev profile, then the tests. Benches run once each in test
# mode, which keeps them compiling and exercised without timing anything.
# No system protoc: a `protoc` that fails shadows any on PATH and PROTOC is unset, so the build
# uses the vendored one (.cargo/config.toml -> tools/protoc), as on a fresh machine. A change
# that needs a system protoc fails here instead of on a user's machine.
noprotoc="$(mktemp -d)"
trap 'rm -rf "$noprotoc"' EXIT
printf '#!/bin/sh\necho "system protoc called ($*): the build must use the vendored one (tools/protoc)" >&2\nexit 127\n' >"$noprotoc/protoc"
chmod +x "$noprotoc/protoc"
export PATH="$noprotoc:$PATH"
unset PROTOC
cargo build --workspace --all-targets --locked
RUST_TEST_THREADS="${TEST_THREADS:-2}" cargo test --workspace --all-targets --locked

# Bounded fuzzing of the codec (cargo fuzz, libFuzzer).
if [ "${FUZZ_SECONDS:-60}" != 0 ]; then
  .ci/fuzz.sh
fi
echo "tools/test.sh: all tests passed"
