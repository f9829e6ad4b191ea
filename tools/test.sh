#!/usr/bin/env bash
# Builds tandem with warnings as errors and runs the whole test suite (CTest,
# with cmocka test bodies), OpenCL tests on every OpenCL device found (PoCL
# and Mesa's rusticl on llvmpipe, whose compiler front end is the one of
# Mesa's AMD and Intel GPU drivers), twice: with the cpu backend on 1 thread
# and on 2. With CI=true both OpenCL implementations must have run.
#   tools/test.sh                 build in build/ (the default GEMM, oneDNN) and test
#   tools/test.sh --sanitize      the same with ASan + UBSan, in build-sanitize/
#   tools/test.sh --gemm NAME     the cpu backend's GEMM: onednn, openblas or
#                                 portable, in build-gemm-NAME/
set -eu
cd "$(dirname "$0")/.."
tools/install-deps.sh
build=build
options=(-DTANDEM_WERROR=ON -DTANDEM_BUILD_TESTS=ON)
export RUSTICL_ENABLE=${RUSTICL_ENABLE:-llvmpipe}
platforms=("Portable Computing Language" "rusticl") # the ones CI must see
case "${1:-}" in
--sanitize)
    build=build-sanitize
    options+=(-DTANDEM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
    # PoCL, LLVM and CLBlast keep some allocations until exit: not ours to
    # fix. rusticl's leaks come through frames LSan cannot name, so the
    # sanitizer build runs on PoCL alone.
    export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
    mkdir -p "$build/pocl-only-vendors"
    cp /etc/OpenCL/vendors/pocl.icd "$build/pocl-only-vendors/"
    export OCL_ICD_VENDORS=$PWD/$build/pocl-only-vendors
    platforms=("Portable Computing Language")
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    ;;
--gemm)
    build=build-gemm-$2
    options+=(-DTANDEM_CPU_GEMM="$2")
    ;;
"") ;;
*)
    echo "usage: tools/test.sh [--sanitize | --gemm onednn|openblas|portable]" >&2
    exit 2
    ;;
esac
cmake -S . -B "$build" "${options[@]}" >/dev/null
cmake --build "$build" -j "$(nproc)"
cd "$build"
for threads in 1 2; do
    echo "== the suite with the cpu backend on $threads thread(s) =="
    TANDEM_THREADS=$threads ctest --output-on-failure -j "$(nproc)"
    # Say which devices the backend tests really ran on (CTest hides passing output).
    echo "Devices the tests ran on:"
    grep -h -E "^(backend [0-9]+:|also:|SKIPPING)" Testing/Temporary/LastTest.log | sort -u |
        sed 's/^/  /'
    for platform in "${platforms[@]}"; do
        if [ "${CI:-}" = true ] &&
            ! grep -q "^backend [0-9]*: opencl .*(platform $platform," Testing/Temporary/LastTest.log; then
            echo "FAILED: CI=true but no test ran on the OpenCL platform $platform" >&2
            exit 1
        fi
    done
done
