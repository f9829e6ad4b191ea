#!/usr/bin/env bash
# Installs the Debian 12 packages tandem needs to build and test, if any is
# missing. Runs apt-get as root, or through sudo.
set -eu
packages=(
    cmake gcc make pkg-config      # build
    ocl-icd-opencl-dev opencl-c-headers  # the OpenCL ICD loader and headers
    pocl-opencl-icd                # an OpenCL driver for the CPU (tests, CI)
    mesa-opencl-icd                # Mesa's rusticl: a second one, with the GPU drivers' compiler
    libclblast-dev                 # GEMM on OpenCL devices
    libdnnl-dev                    # oneDNN: the cpu backend's GEMM (default)
    libopenblas-dev                # OpenBLAS: the cpu backend's GEMM with -DTANDEM_CPU_GEMM=openblas
    libinih-dev                    # config files
    zlib1g-dev                     # gzipped data files, checkpoint checksums
    gnuplot-nox                    # the pictures of tandem sweep
    libopenmpi-dev openmpi-bin     # Open MPI: tandem em across processes and machines (mpirun)
    python3-venv                   # the Python package's tests, in a venv from PyPI
    libcmocka-dev                  # test bodies
    oclgrind                       # checks every kernel's memory accesses (tests)
    valgrind                       # memcheck of a short train and em (tests, portable GEMM)
    clang libclang-rt-14-dev libomp-dev  # libFuzzer targets (tools/fuzz.sh)
    clinfo                         # to inspect OpenCL installs by hand
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
