#!/usr/bin/env bash
# From a fresh Debian 12 machine: installs what is missing, builds tandem,
# shows the devices and runs the main job, the source's ResNet sweep
# (C = 1, 2, 4, 64 for 4000 epochs each) on the configured device, leaving
# the pictures and summary.md in runs/sweep/. Extra arguments go to tandem,
# e.g. tools/bootstrap.sh --epochs 200 or tools/bootstrap.sh --resume.
set -eu
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DTANDEM_MPI=ON >/dev/null
cmake --build build -j "$(nproc)"
build/tandem --config configs/resnet.ini devices
build/tandem --config configs/resnet.ini "$@" sweep
