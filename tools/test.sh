#!/usr/bin/env bash
# Builds tandem with warnings as errors and runs the whole test suite (CTest,
# with cmocka test bodies), OpenCL tests on every OpenCL device found (PoCL
# and Mesa's rusticl on llvmpipe, whose compiler front end is the one of
# Mesa's AMD and Intel GPU drivers), twice: with the cpu backend on 1 thread
# and on 2. With CI=true both OpenCL implementations must have run.
#   tools/test.sh                 build in build/ (the default GEMM, oneDNN, and
#                                 MPI: mpirun tests of distributed EM and training)
#                                 and test, then the Python package
#                                 (tools/test-python.sh: pip install . in a venv)
#   tools/test.sh --sanitize      the same with ASan + UBSan, in build-sanitize/
#                                 (without MPI: the build that refuses mpirun)
#   tools/test.sh --gemm NAME     the cpu backend's GEMM: onednn, openblas or
#                                 portable, in build-gemm-NAME/ (without MPI)
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
"") options+=(-DTANDEM_MPI=ON) ;;
*)
    echo "usage: tools/test.sh [--sanitize | --gemm onednn|openblas|portable]" >&2
    exit 2
    ;;
esac
cmake -S . -B "$build" "${options[@]}" >/dev/null
cmake --build "$build" -j "$(nproc)"
cd "$build"
logs=(Testing/Temporary/LastTest.log Testing/Temporary/FirstTry.log)
# The suite once; in the sanitizer build, tests that failed only because
# LeakSanitizer's stop-the-world tracer died at exit (an intermittent fault
# of the tool under load, google/sanitizers#1353; seen once in `tandem
# tune`) run once more. Any other failure stands.
run_suite() {
    rm -f "${logs[1]}"
    TANDEM_THREADS=$1 ctest --output-on-failure -j "$(nproc)" && return 0
    [ "$build" = build-sanitize ] &&
        grep -q "LeakSanitizer has encountered a fatal error" "${logs[0]}" || return 1
    echo "LeakSanitizer's tracer failed: the failed tests once more"
    cp "${logs[0]}" "${logs[1]}"
    TANDEM_THREADS=$1 ctest --output-on-failure --rerun-failed
}
for threads in 1 2; do
    echo "== the suite with the cpu backend on $threads thread(s) =="
    run_suite "$threads"
    # Say which devices the backend tests really ran on (CTest hides passing output).
    echo "Devices the tests ran on:"
    cat "${logs[@]}" 2>/dev/null | grep -E "^(backend [0-9]+:|also:|SKIPPING)" | sort -u |
        sed 's/^/  /'
    for platform in "${platforms[@]}"; do
        if [ "${CI:-}" = true ] &&
            ! cat "${logs[@]}" 2>/dev/null | grep -q "^backend [0-9]*: opencl .*(platform $platform,"; then
            echo "FAILED: CI=true but no test ran on the OpenCL platform $platform" >&2
            exit 1
        fi
    done
done
cd ..
if [ "$build" = build ]; then
    echo "== the Python package (tools/test-python.sh) =="
    tools/test-python.sh "$build"
fi
