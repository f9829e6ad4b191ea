#!/usr/bin/env bash
# tandem train (one epoch) and tandem em on the digits, on the cpu backend,
# under valgrind's memcheck: any invalid read or write, use of an
# uninitialised value or definite leak fails the test (--error-exitcode).
# Registered for the portable-GEMM build only: oneDNN's JIT-compiled GEMM
# kernels read past their own buffers, which memcheck cannot tell from a bug.
# Usage: test_valgrind.sh path/to/tandem path/to/source-tree
set -u
tandem=$1
source "$(dirname "$0")/../require_tool.sh"
require_tool valgrind
cd "$2"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
run() { # run NAME ARGS...
    local name=$1
    shift
    if valgrind -q --error-exitcode=1 --leak-check=full --show-leak-kinds=definite \
        --errors-for-leak-kinds=definite "$tandem" -q --device cpu "$@" >"$work/out" 2>&1; then
        echo "ok: $name under valgrind"
    else
        echo "FAILED: $name under valgrind"
        cat "$work/out"
        status=1
    fi
}
run "tandem train, one epoch" --epochs 1 --out "$work/train" train
run "tandem em" --config configs/em.ini --out "$work/em" em
exit $status
