#!/usr/bin/env bash
# Bounded fuzzing of the BGP wire codec, for CI.
#
#   .ci/fuzz.sh                      # target `decode` for 60 s
#   FUZZ_SECONDS=600 FUZZ_TARGETS="decode frame" .ci/fuzz.sh
#   FUZZ_STABLE=1 .ci/fuzz.sh        # the stable fallback even where nightly exists
#
# Installs cargo-fuzz if it is missing, writes the seed corpus (valid messages of every kind,
# built with the codec itself) into fuzz/corpus/<target>, then runs each target for
# FUZZ_SECONDS. Uses the nightly toolchain when there is one, otherwise stable with
# RUSTC_BOOTSTRAP=1 (cargo-fuzz needs -Zsanitizer). Prints the number of executions per target
# and exits non-zero on a crash, a hang (an input that takes over FUZZ_TIMEOUT seconds) or a
# memory blow-up; the crashing input is then in fuzz/artifacts/<target>/ and printed as hex.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-decode}
timeout=${FUZZ_TIMEOUT:-10}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if [ -z "${FUZZ_STABLE:-}" ] && cargo +nightly --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
    echo "== toolchain: $(cargo +nightly --version)"
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
    echo "== toolchain: $(cargo --version) with RUSTC_BOOTSTRAP=1 (stable fallback)"
fi

echo "== seed corpus"
cargo run --quiet --manifest-path fuzz/Cargo.toml --example seed_corpus -- fuzz/corpus

status=0
for target in $targets; do
    log=$(mktemp "${TMPDIR:-/tmp}/fuzz-$target.XXXXXX")
    echo "== fuzzing $target for ${seconds}s (log: $log)"
    set +e
    "${fuzz[@]}" run "$target" -- \
        -max_total_time="$seconds" -timeout="$timeout" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ -z "$runs" ]; then
        # No final stats after a crash: the last status line says how far it got.
        runs=$(grep -o '^#[0-9]*' "$log" | tail -n 1 | tr -d '#')
    fi
    rate=$(grep -o 'exec/s: [0-9]*' "$log" | tail -n 1 | sed 's/exec\/s: //')
    echo "$target: ${runs:-0} executions (${rate:-?} exec/s), exit status $rc"
    if [ "$rc" -ne 0 ]; then
        status=1
        echo "== $target FAILED; the end of its log:"
        tail -n 40 "$log"
        for f in $(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log"); do
            [ -f "$f" ] && echo "input $f: $(od -An -v -tx1 "$f" | tr -d ' \n')"
        done
    fi
done
exit "$status"
