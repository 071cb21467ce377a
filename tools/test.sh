#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, builds once, runs every test.
#   tools/test.sh            everything
#   FUZZ_SECONDS=0 tools/test.sh   skip the bounded fuzz run
set -euo pipefail
cd "$(dirname "$0")/.."

# The integration tests create network namespaces and run routers in them, which needs root.
# Without it the tests that need root would only report themselves skipped, and the suite would
# pass without having run them: refuse instead.
if [ "$(id -u)" -ne 0 ]; then
  echo "tools/test.sh: run as root (the tests build network namespaces; \`cargo test\` alone runs them as skipped)" >&2
  exit 1
fi

# Real peers and tools the integration tests use (Debian packages).
PACKAGES=(bird2 gobgpd frr exabgp etcd-server etcd-client openssl iproute2 iputils-ping tcpdump qemu-system-x86 busybox-static nftables)
# kubectl renders deploy/ (tests/deploy): Debian's kubernetes-client, unless a kubectl is
# already installed (the machine image's `kubectl` package owns /usr/bin/kubectl as well, so
# installing kubernetes-client beside it fails).
command -v kubectl >/dev/null 2>&1 || PACKAGES+=(kubernetes-client)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "tools/test.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# kubernetes-validate (PyPI, pinned) checks the rendered manifests against the Kubernetes
# schemas (tests/deploy).
KUBERNETES_VALIDATE=1.33.1
if [ "$(kubernetes-validate --version 2>/dev/null)" != "$KUBERNETES_VALIDATE" ]; then
  echo "tools/test.sh: installing kubernetes-validate==$KUBERNETES_VALIDATE (pip)"
  python3 -m pip install -q "kubernetes-validate==$KUBERNETES_VALIDATE" ||
    python3 -m pip install -q --break-system-packages "kubernetes-validate==$KUBERNETES_VALIDATE" || {
    echo "tools/test.sh: cannot install kubernetes-validate==$KUBERNETES_VALIDATE with pip (tests/deploy needs it)" >&2
    exit 1
  }
  command -v pyenv >/dev/null 2>&1 && pyenv rehash
  if [ "$(kubernetes-validate --version 2>/dev/null)" != "$KUBERNETES_VALIDATE" ]; then
    echo "tools/test.sh: kubernetes-validate==$KUBERNETES_VALIDATE was installed but \`kubernetes-validate\` on PATH is not it" >&2
    exit 1
  fi
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
