#!/usr/bin/env bash
# Measures ms per epoch of the source's protocol for C = 1, 2, 4, 64 on every
# backend and, where Debian's python3-torch is installed, PyTorch on the CPU
# with the same number of threads; then ms per EM iteration (n = 100000,
# D = 784, K = 20) on every backend and in numpy (tools/em_numpy.py); all in
# the same run. Prints a Markdown report with the machine and the ratios
# (docs/benchmarks.md holds one).
#   bench/run.sh [EPOCHS] [EM_ITERATIONS]     (default 100 and 10)
set -eu
cd "$(dirname "$0")/.."
epochs=${1:-100}
threads=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$threads" --target bench_train bench_em >/dev/null
results=$(mktemp)
trap 'rm -f "$results"' EXIT
build/bench/bench_train data/digits.csv.gz "$epochs" >"$results"
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
    /usr/bin/python3 bench/pytorch_resnet.py "$epochs" "$threads" 1 2 4 64 >>"$results"
fi
echo "## ResNet(C) on the digits, $epochs epochs, ms per epoch ($(date -u +%Y-%m-%d))"
echo
echo "Machine: $(lscpu | sed -n 's/^Model name: *//p'), $threads cores,"\
     "$(free -g | awk '/Mem:/{print $2}') GiB; OpenBLAS and PyTorch with $threads threads."
echo
echo "| backend | C | ms/epoch | vs PyTorch | final train error | final test error |"
echo "| --- | --- | --- | --- | --- | --- |"
awk '{ key = $3; ms[$1 " " $2 " " key] = $4; errs[$1 " " $2 " " key] = $5 " | " $6 }
     $1 == "pytorch" { torch[$2] = $3; line[++n] = "| pytorch (CPU) | " $2 " | " $3 " | 1 | " $4 " | " $5 " |"; next }
     { rows[++m] = $0 }
     END {
       for (i = 1; i <= m; i++) {
         split(rows[i], f, " ")
         ratio = (f[3] in torch) ? sprintf("%.1fx faster", torch[f[3]] / f[4]) : "-"
         if ((f[3] in torch) && f[4] > torch[f[3]]) ratio = sprintf("%.1fx slower", f[4] / torch[f[3]])
         printf "| %s | %s | %s | %s | %s | %s |\n", f[2], f[3], f[4], ratio, f[5], f[6]
       }
       for (i = 1; i <= n; i++) print line[i]
     }' "$results"
cpu_total=$(awk '$1 == "tandem" && $2 == "cpu" { s += $4 } END { printf "%.0f", s * 4000 / 1000 }' "$results")
echo
echo "Projected four-model sweep (4000 epochs each) on the cpu backend: about $cpu_total s."

em_iterations=${2:-10}
em_results=$(mktemp)
trap 'rm -f "$results" "$em_results"' EXIT
build/bench/bench_em 100000 784 20 "$em_iterations" >"$em_results"
if /usr/bin/python3 -c "import numpy" 2>/dev/null; then
    /usr/bin/python3 tools/em_numpy.py 100000 784 20 "$em_iterations" >>"$em_results"
fi
echo
echo "## EM, n = 100000, D = 784, K = 20: ms per iteration ($em_iterations iterations)"
echo
echo "| implementation | ms/iteration | tandem cpu is |"
echo "| --- | --- | --- |"
awk '$1 == "tandem" && $2 == "cpu" { cpu = $6 }
     { name[NR] = ($1 == "numpy" ? "numpy, " $2 : "tandem " $2); ms[NR] = $6 }
     END { for (i = 1; i <= NR; i++)
             printf "| %s | %s | %s |\n", name[i], ms[i],
                    name[i] == "tandem cpu" ? "-" : sprintf("%.1fx faster", ms[i] / cpu) }' "$em_results"
