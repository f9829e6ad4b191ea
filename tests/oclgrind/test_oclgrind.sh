#!/usr/bin/env bash
# The parity harness on Oclgrind, a simulator that checks every work-item's
# memory accesses: out of bounds (always on), data races between work-items
# (--data-races) and misuse of the OpenCL API (--check-api). Any report fails
# the test. Shapes are cut to 1024 elements a tensor (a simulator is slow),
# at least one case per op. Tandem's own kernels alone, then the ops that
# also run CLBlast's GEMM; each as Oclgrind's device (a GPU) runs them, then
# with the forms a CPU device takes (TANDEM_OPENCL_REDUCTION_GROUP=1).
# Not --uninitialized: Debian's Oclgrind 21.10 cannot follow LLVM's `freeze`
# instruction in optimised kernels, and without optimisation it flags values
# the harness shows correct (batch norm backward's per-channel means, read
# back in the next kernel, and all that CLBlast's XgemmDirect computes).
# Usage: test_oclgrind.sh path/to/test_parity
set -u
parity=$1
source "$(dirname "$0")/../require_tool.sh"
require_tool oclgrind "Debian: oclgrind"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Kernels built for Oclgrind each run, not taken from tandem's binary cache.
export TANDEM_KERNEL_CACHE=off TANDEM_PARITY_MAX_ELEMENTS=1024
status=0
run() { # run NAME GEMM-SELECTION CHECKS...
    local name=$1 selection=$2
    shift 2
    TANDEM_PARITY_GEMM=$selection oclgrind "$@" --log "$work/$name.log" "$parity" \
        >"$work/$name.out" 2>&1
    local code=$?
    if [ "$code" -ne 0 ] || ! grep -q "Oclgrind" "$work/$name.out"; then
        echo "FAILED: $name: the parity harness on Oclgrind (exit $code)"
        cat "$work/$name.out"
        status=1
    elif [ -s "$work/$name.log" ]; then
        echo "FAILED: $name: Oclgrind reported $(grep -c 'Kernel:' "$work/$name.log") problems:"
        head -60 "$work/$name.log"
        status=1
    else
        echo "ok: $name: $(grep -c 'backend(s) agree' "$work/$name.out") ops, no Oclgrind report"
    fi
}
run "tandem's kernels" none --data-races --check-api
TANDEM_OPENCL_REDUCTION_GROUP=1 run "tandem's kernels, CPU forms" none --data-races --check-api
run "the GEMM ops" only --data-races --check-api
TANDEM_OPENCL_REDUCTION_GROUP=1 run "the GEMM ops, CPU forms" only --data-races --check-api
exit $status
