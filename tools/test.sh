#!/usr/bin/env bash
# Builds tandem with warnings as errors and runs the whole test suite (CTest,
# with cmocka test bodies), OpenCL tests on every OpenCL device found.
#   tools/test.sh             build in build/ and test
#   tools/test.sh --sanitize  the same with ASan + UBSan, in build-sanitize/
set -eu
cd "$(dirname "$0")/.."
tools/install-deps.sh
build=build
options=(-DTANDEM_WERROR=ON -DTANDEM_BUILD_TESTS=ON)
if [ "${1:-}" = "--sanitize" ]; then
    build=build-sanitize
    options+=(-DTANDEM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
    # PoCL, LLVM and CLBlast keep some allocations until exit: not ours to fix.
    export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
cmake -S . -B "$build" "${options[@]}" >/dev/null
cmake --build "$build" -j "$(nproc)"
cd "$build"
ctest --output-on-failure -j "$(nproc)"
# Say which devices the backend tests really ran on (CTest hides passing output).
echo "Devices the tests ran on:"
grep -h -E "^(backend [0-9]+:|SKIPPING)" Testing/Temporary/LastTest.log | sort -u | sed 's/^/  /'
