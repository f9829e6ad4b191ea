#!/usr/bin/env bash
# The GPU check: on a machine with a GPU and its OpenCL driver but without
# Debian's development packages or a network (a lent GPU machine), builds
# tandem from Debian 12 packages carried beside the tree, then runs the whole
# test suite with the GPU as the OpenCL device, `tandem selftest` on it, and
# the training, EM and SGEMM benchmarks. Everything goes to a log.
#   tools/gpu-check.sh --fetch   on a Debian 12 machine: download the packages
#                                into .gpu/debs (about 10 MB)
#   tools/gpu-check.sh [OUTDIR]  on the GPU machine (with .gpu carried there):
#                                writes OUTDIR/gpu-check.log (default: $OUT or .)
#   tools/gpu-check.sh --local [OUTDIR]
#                                the same here, with the installed packages and
#                                OpenCL drivers (PoCL), shorter benchmarks: how
#                                the script itself is tested without a GPU
# docs/benchmarks.md records what it measured.
set -u
cd "$(dirname "$0")/.."
local_run=false
if [ "${1:-}" = "--local" ]; then
    local_run=true
    shift
fi
packages=(ocl-icd-libopencl1 ocl-icd-opencl-dev opencl-c-headers opencl-clhpp-headers
          libclblast1 libclblast-dev libinih1 libinih-dev libcmocka0 libcmocka-dev
          zlib1g zlib1g-dev libdnnl2 libdnnl-dev pkgconf pkgconf-bin libpkgconf3 clinfo)
if [ "${1:-}" = "--fetch" ]; then
    rm -rf .gpu/debs && mkdir -p .gpu/debs && cd .gpu/debs && apt-get download "${packages[@]}"
    exit
fi
out=${1:-${OUT:-.}}
log=$out/gpu-check.log
mkdir -p "$out"
exec > >(tee "$log") 2>&1
root=$PWD/.gpu/root
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step() { echo; echo "== $* =="; }

step "machine"
date -u
command -v nvidia-smi >/dev/null &&
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
lscpu | sed -n 's/^Model name: *//p'
lscpu | awk -F': *' '/^CPU family:/ { f = $2 } /^Model:/ { m = $2 } END { print "family " f ", model " m }'
nproc

# What runs on the GPU machine, and the shorter local run.
device=opencl:NVIDIA epochs=30 em_sizes=(100000 1000000) em_big=10000000
if $local_run; then
    device=opencl:0 epochs=3 em_sizes=(100000) em_big=1000000
fi

if ! $local_run; then
step "Debian packages into .gpu/root"
rm -rf "$root" && mkdir -p "$root"
for deb in .gpu/debs/*.deb; do dpkg-deb -x "$deb" "$root"; done
# Absolute symbolic links (libz.so -> /lib/...) point into the root instead.
find "$root" -type l | while read -r link; do
    target=$(readlink "$link")
    case $target in /*) ln -sfn "$root$target" "$link" ;; esac
done
libs=$root/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PATH=$root/usr/bin:$PATH
export PKG_CONFIG_PATH=$libs/pkgconfig:$root/usr/share/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$root
export CMAKE_PREFIX_PATH=$root/usr

step "NVIDIA's OpenCL driver"
driver=$(ldconfig -p | awk '/libnvidia-opencl\.so\.1/ { print $NF; exit }')
[ -n "$driver" ] || driver=$(find / -name 'libnvidia-opencl.so.1' 2>/dev/null | head -1)
if [ -z "$driver" ]; then
    echo "FAILED: no libnvidia-opencl.so.1 on this machine"
    exit 1
fi
mkdir -p .gpu/vendors && echo "$driver" >.gpu/vendors/nvidia.icd
export OCL_ICD_VENDORS=$PWD/.gpu/vendors
echo "driver: $driver"
fi
clinfo -l

step "build"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
rm -rf build-gpu
cmake -S . -B build-gpu "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DTANDEM_BUILD_TESTS=ON \
    -DTANDEM_WERROR=ON >/dev/null && cmake --build build-gpu -j "$(nproc)" >build-gpu.log 2>&1 ||
    { tail -40 build-gpu.log; exit 1; }
echo "built"

step "tandem devices and selftest (ResNet(4), then ResNet(64) in both conv plans)"
build-gpu/tandem devices
build-gpu/tandem --device "$device" selftest
build-gpu/tandem -q --device "$device" --channels 64 selftest | sed -n '/^two training/,$p'
TANDEM_OPENCL_DIRECT_CONVS=0 build-gpu/tandem -q --device "$device" --channels 64 selftest |
    sed -n '/^two training/,$p'

step "training: ms per epoch ($epochs epochs), C = 1, 2, 4, 64"
timeout 150 build-gpu/bench/bench_train data/digits.csv.gz "$epochs"
step "the same in PyTorch on the GPU (CUDA), if this machine's python3 has it"
if python3 -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
    python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(),
          "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version())'
    TANDEM_TORCH_DEVICE=cuda timeout 120 python3 bench/pytorch_resnet.py "$epochs" "$(nproc)" 1 2 4 64
else
    echo "no PyTorch with CUDA here"
fi
step "where ResNet(64)'s time goes on the device (TANDEM_OPENCL_PROFILE, 3 epochs)"
TANDEM_OPENCL_PROFILE=1 timeout 60 build-gpu/tandem --device "$device" --config configs/resnet.ini \
    --channels 64 --epochs 3 --out "$work/profile" train
step "the same with the small convs by GEMM, not as direct kernels (TANDEM_OPENCL_DIRECT_CONVS=0)"
TANDEM_OPENCL_DIRECT_CONVS=0 timeout 120 build-gpu/bench/bench_train data/digits.csv.gz "$epochs" 64
TANDEM_OPENCL_DIRECT_CONVS=0 TANDEM_OPENCL_PROFILE=1 timeout 60 build-gpu/tandem --device "$device" \
    --config configs/resnet.ini --channels 64 --epochs 3 --out "$work/profile-gemm" train 2>&1 |
    grep -A12 "opencl profile"
for n in "${em_sizes[@]}"; do
    step "EM: ms per iteration, n = $n, D = 784, K = 20, both methods, then bits in blocks of 8192 rows"
    timeout 60 build-gpu/bench/bench_em "$n" 784 20 5 bits
    timeout 60 build-gpu/bench/bench_em "$n" 784 20 5 gemm
    # the blocks before they filled a GPU (docs/devices.md), same run
    TANDEM_OPENCL_PARALLEL_ROWS=0 timeout 60 build-gpu/bench/bench_em "$n" 784 20 5 bits all
done
step "where EM's time goes on the device (bits, n = ${em_sizes[0]}, TANDEM_OPENCL_PROFILE)"
TANDEM_OPENCL_PROFILE=1 timeout 60 build-gpu/bench/bench_em "${em_sizes[0]}" 784 20 5 bits 2>&1 |
    grep -A8 "opencl profile"
TANDEM_OPENCL_PROFILE=1 timeout 60 build-gpu/bench/bench_em "${em_sizes[0]}" 784 20 5 gemm 2>&1 |
    grep -A8 "opencl profile"
step "EM: n = $em_big from packed bits, then in blocks of 8192 rows"
timeout 90 build-gpu/bench/bench_em "$em_big" 784 20 3 bits
TANDEM_OPENCL_PARALLEL_ROWS=0 timeout 90 build-gpu/bench/bench_em "$em_big" 784 20 3 bits all
step "SGEMM of the cpu backend, $(nproc) threads"
timeout 60 build-gpu/bench/bench_gemm

step "the test suite (CI=true: the GPU must be found)"
# test_install checks installing, not the device, and the carried packages' sysroot
# would leak into its pkg-config run.
# 4 tests at a time on 4 threads each: no more threads than cores, or OpenMP's
# spinning threads slow each other down (measured: test_em 1 s -> 60 s).
# Oclgrind is a simulator (not the GPU), and not carried.
# test_train_cli runs without CI=true: with it, the missing gnuplot (not
# carried: a GUI's worth of libraries) would fail it, and gnuplot is no GPU matter.
(cd build-gpu && CI=true TANDEM_THREADS=4 timeout 240 ctest --output-on-failure -j 4 --timeout 200 \
    -E "test_install|test_oclgrind|test_train_cli")
grep -h -E "^(backend [0-9]+:|also:|SKIPPING)" build-gpu/Testing/Temporary/LastTest.log | sort -u
(cd build-gpu && TANDEM_THREADS=4 timeout 120 ctest --output-on-failure -R test_train_cli)

step "CLBlast tuned for the device (tandem tune), then selftest and ResNet(64) again"
export TANDEM_TUNING_DIR=$out/tuning
timeout 150 build-gpu/tandem --device "$device" tune
build-gpu/tandem --device "$device" selftest
timeout 120 build-gpu/bench/bench_train data/digits.csv.gz "$epochs" 64
TANDEM_OPENCL_PROFILE=1 timeout 60 build-gpu/tandem --device "$device" --config configs/resnet.ini \
    --channels 64 --epochs 3 --out "$work/profile-tuned" train 2>&1 | grep -A8 "opencl profile"
step "done"
