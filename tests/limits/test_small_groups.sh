#!/usr/bin/env bash
# The parity harness with the OpenCL devices acting as devices of small
# limits: work-groups of at most 16 work-items (TANDEM_OPENCL_MAX_GROUP, the
# backend's cap for testing), and the reductions built and launched for 16
# as on a GPU (TANDEM_OPENCL_REDUCTION_GROUP: a CPU device takes one
# work-item), and the bits kernels' groups shrink with them; and EM's
# bits_sums split over up to 7 parts of the rows added in order, as on a GPU
# (TANDEM_OPENCL_BITS_PARTS, 7 so that parts are uneven); and the kernels
# launched over (value, plane) with at most 3 groups of planes along the
# range's second axis, the rest along its third (TANDEM_OPENCL_PLANE_GROUPS,
# as a GPU whose grid is small for the planes would). Every op must still
# agree. Then test_layer_semantics the same way, so the GPU forms also meet
# what random inputs cannot reach (max-pool's ties and NaN), and the PyTorch
# fixtures, so that whole models in the GPU forms (small convs as direct
# kernels, the Block's input gradient added in place by one) train as
# PyTorch does. Then all three again with the GPU's reductions but the
# small convs' GEMM plans (TANDEM_OPENCL_DIRECT_CONVS=0, what a GPU check
# times against the direct kernels).
# Usage: test_small_groups.sh path/to/test_parity path/to/test_layer_semantics
#        path/to/test_pytorch
set -u
export TANDEM_OPENCL_MAX_GROUP=16 TANDEM_OPENCL_REDUCTION_GROUP=16 TANDEM_OPENCL_BITS_PARTS=7 \
    TANDEM_OPENCL_PLANE_GROUPS=3
output=$("$1" 2>&1)
status=$?
if [ "$status" -ne 0 ]; then
    echo "FAILED: the parity harness with work-groups of 16 (exit $status)"
    echo "$output"
    exit 1
fi
if ! grep -q "^backend [0-9]*: opencl" <<<"$output" && [ "${CI:-}" != true ]; then
    echo "SKIPPED: no OpenCL device"
    exit 77
fi
if ! grep -q "^backend [0-9]*: opencl .*capped by TANDEM_OPENCL_MAX_GROUP" <<<"$output"; then
    echo "FAILED: no OpenCL backend ran with capped work-groups"
    echo "$output"
    exit 1
fi
grep -E "^backend [0-9]+:" <<<"$output"
# How many OpenCL backends the parity output lists, and how many of them
# run small convs as direct kernels.
opencl_backends() { grep -c "^backend [0-9]*: opencl" <<<"$output"; }
direct_backends() { grep -c "^backend [0-9]*: opencl .*\[small convs as direct kernels\]" <<<"$output"; }
run_all() { # run_all EXPECTED-DIRECT-BACKENDS NAME
    if [ "$(direct_backends)" != "$1" ]; then
        echo "FAILED: $(direct_backends) OpenCL backends run small convs as direct kernels, not $1"
        echo "$output"
        exit 1
    fi
    echo "ok: every op agrees with work-groups of at most 16, $2"
    if ! semantics=$("$semantics_test" 2>&1); then
        echo "FAILED: test_layer_semantics with work-groups of 16, $2"
        echo "$semantics"
        exit 1
    fi
    echo "ok: test_layer_semantics with work-groups of 16, $2"
    if ! pytorch=$("$pytorch_test" 2>&1); then
        echo "FAILED: the PyTorch fixtures with work-groups of 16, $2"
        echo "$pytorch"
        exit 1
    fi
    echo "ok: the PyTorch fixtures with work-groups of 16, $2"
}
semantics_test=$2 pytorch_test=$3
run_all "$(opencl_backends)" "small convs as direct kernels"
export TANDEM_OPENCL_DIRECT_CONVS=0
if ! output=$("$1" 2>&1); then
    echo "FAILED: the parity harness with work-groups of 16 and TANDEM_OPENCL_DIRECT_CONVS=0"
    echo "$output"
    exit 1
fi
run_all 0 "small convs by GEMM (TANDEM_OPENCL_DIRECT_CONVS=0)"
