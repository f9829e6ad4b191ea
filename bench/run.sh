#!/usr/bin/env bash
# Benchmarks tandem against what users install today, all in the same run and
# with the same thread count, and prints a Markdown report (docs/benchmarks.md
# holds two):
#   - the machine: CPU model with its family/model numbers, and the GEMM or
#     BLAS kernel each side really runs (tandem devices; PyTorch's config;
#     numpy's through threadpoolctl);
#   - SGEMM of tandem's cpu backend beside dnnl_sgemm called directly;
#   - ms per epoch of the source's protocol for C = 1, 2, 4, 64 on every
#     backend, beside PyTorch 2.x from PyPI (and Debian's python3-torch when
#     installed), with ratios;
#   - ms per EM iteration (n = 100000, D = 784, K = 20) with both methods
#     (bits, gemm) on every backend, beside numpy 2.x from PyPI in float64 and
#     float32.
# PyTorch, numpy and threadpoolctl come from PyPI into a virtual environment,
# created when missing (bench/.venv, or TANDEM_BENCH_VENV).
#   bench/run.sh [EPOCHS] [EM_ITERATIONS]     (default 100 and 10)
# TANDEM_THREADS sets the thread count of both sides (default: all cores).
set -eu -o pipefail
cd "$(dirname "$0")/.."
epochs=${1:-100}
em_iterations=${2:-10}
threads=${TANDEM_THREADS:-$(nproc)}
export TANDEM_THREADS=$threads
# PoCL's worker threads pinned to cores: unpinned, the scheduler of the
# 2-core VMs here sometimes stacked them on one core, and kernel times were
# bimodal (14 or 27 ms for the same EM sums).
export POCL_AFFINITY=${POCL_AFFINITY:-1}
venv=${TANDEM_BENCH_VENV:-bench/.venv}

if ! "$venv/bin/python" -c "import torch, numpy, threadpoolctl" 2>/dev/null; then
    echo "bench: installing PyTorch, numpy and threadpoolctl from PyPI into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q torch numpy threadpoolctl
fi
# The Python side on the same threads; numpy's own OpenBLAS picks its kernel
# from the CPU, as on a user's machine, so no OPENBLAS_CORETYPE override.
python_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS="$threads"
            OPENBLAS_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads")
pypi=("${python_env[@]}" "$venv/bin/python")
debian=()
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
    debian=("${python_env[@]}" /usr/bin/python3)
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target tandem_cli bench_train bench_em bench_gemm >/dev/null
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

echo "## Run of $(date -u '+%Y-%m-%d %H:%M') UTC"
echo
echo "Machine: $(lscpu | sed -n 's/^Model name: *//p') (family $(lscpu | sed -n 's/^CPU family: *//p'),"\
     "model $(lscpu | sed -n 's/^Model: *//p')), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB;"\
     "every side on $threads threads."
echo
echo "- tandem: $(build/tandem devices | sed -n 's/^.*\] cpu *//p')"
"${pypi[@]}" bench/python_info.py "$threads" | sed 's/^/- PyPI: /'
if [ ${#debian[@]} -gt 0 ]; then
    "${debian[@]}" bench/python_info.py "$threads" | sed 's/^/- Debian: /'
fi

echo
echo "### SGEMM, GFLOP/s (best of 5 rounds)"
echo
echo "| m x n x k | tandem cpu backend | dnnl_sgemm directly | tandem / direct |"
echo "| --- | --- | --- | --- |"
build/bench/bench_gemm "$threads" 2>/dev/null |
    awk '{ printf "| %s | %s | %s | %s |\n", $2, $4, ($5 ? $6 : "-"), ($5 ? $7 : "-") }'

# bench_train runs each C on every backend in turn; the table lists them by backend.
build/bench/bench_train data/digits.csv.gz "$epochs" 2>/dev/null | sort -s -k2,2 >"$results/train"
"${pypi[@]}" bench/pytorch_resnet.py "$epochs" "$threads" 1 2 4 64 | sed 's/^pytorch/pypi/' \
    >>"$results/train"
if [ ${#debian[@]} -gt 0 ]; then
    "${debian[@]}" bench/pytorch_resnet.py "$epochs" "$threads" 1 2 4 64 | sed 's/^pytorch/debian/' \
        >>"$results/train"
fi
echo
echo "### ResNet(C) on the digits, $epochs epochs: ms per epoch"
echo
echo "| implementation | C | ms/epoch | / PyTorch (PyPI) | final train error | final test error | kernel launches, waits per epoch |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
awk '$1 == "pypi" { torch[$2] = $3 }
     { line[NR] = $0 }
     END {
       for (i = 1; i <= NR; i++) {
         n = split(line[i], f, " ")
         counts = "-"
         if (f[1] == "tandem") { name = "tandem " f[2]; c = f[3]; ms = f[4]; tr = f[5]; te = f[6]
                                 if (f[2] != "cpu") counts = f[7] ", " f[8] }
         else { name = (f[1] == "pypi" ? "PyTorch (PyPI)" : "PyTorch (Debian)"); c = f[2]; ms = f[3]; tr = f[4]; te = f[5] }
         ratio = (c in torch) ? sprintf("%.3f", ms / torch[c]) : "-"
         printf "| %s | %s | %s | %s | %s | %s | %s |\n", name, c, ms, ratio, tr, te, counts
       }
     }' "$results/train"
cpu_total=$(awk '$1 == "tandem" && $2 == "cpu" { s += $4 } END { printf "%.0f", s * 4000 / 1000 }' \
    "$results/train")
echo
echo "Projected four-model sweep (4000 epochs each) on the cpu backend: about $cpu_total s."

for method in bits gemm; do
    build/bench/bench_em 100000 784 20 "$em_iterations" "$method" >>"$results/em" 2>/dev/null
done
"${pypi[@]}" tools/em_numpy.py 100000 784 20 "$em_iterations" >>"$results/em"
echo
echo "### EM, n = 100000, D = 784, K = 20: ms per iteration ($em_iterations iterations)"
echo
echo "| implementation | ms/iteration | / numpy float32 |"
echo "| --- | --- | --- |"
awk '$1 == "numpy" && $2 == "float32" { f32 = $6 }
     { name[NR] = ($1 == "numpy" ? "numpy (PyPI), " $2 : "tandem " $2 ", method " $7); ms[NR] = $6 }
     END { for (i = 1; i <= NR; i++) printf "| %s | %s | %.3f |\n", name[i], ms[i], ms[i] / f32 }' \
    "$results/em"
