#!/usr/bin/env bash
# Fuzzes tandem's input parsers: builds the libFuzzer targets of tests/fuzz
# with clang, ASan and UBSan in build-fuzz/, then runs each one for the given
# time from its committed seeds (tests/fuzz/seeds/TARGET) and the corpus it
# has grown (build-fuzz/corpus/TARGET). Any crash, leak, sanitizer report or
# timeout fails the run and leaves the input in build-fuzz/.
#   tools/fuzz.sh             30 seconds a target (what CI runs)
#   tools/fuzz.sh MINUTES     a longer run, MINUTES a target
#   tools/fuzz.sh MINUTES TARGET...   only those (config image_csv idx
#                             binary_csv npy checkpoint)
set -eu -o pipefail
cd "$(dirname "$0")/.."
seconds=30
[ $# -gt 0 ] && seconds=$(($1 * 60)) && shift
targets=(config image_csv idx binary_csv npy checkpoint)
[ $# -gt 0 ] && targets=("$@")
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DTANDEM_FUZZ=ON -DTANDEM_BUILD_TESTS=OFF \
    -DTANDEM_CPU_GEMM=portable -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target fuzz_targets >/dev/null
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# PoCL, LLVM and CLBlast are linked in (not used here); their exit-time
# allocations are suppressed as in the sanitizer build.
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
for target in "${targets[@]}"; do
    mkdir -p "build-fuzz/corpus/$target"
    dictionary=()
    [ -f "tests/fuzz/$target.dict" ] && dictionary=(-dict="tests/fuzz/$target.dict")
    echo "== fuzz_$target: $seconds s =="
    "build-fuzz/tests/fuzz/fuzz_$target" "${dictionary[@]}" -max_total_time="$seconds" \
        -max_len=65536 -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="build-fuzz/$target-" "build-fuzz/corpus/$target" \
        "tests/fuzz/seeds/$target" 2>&1 | tail -12
done
echo "every target ran $seconds s without a finding"
