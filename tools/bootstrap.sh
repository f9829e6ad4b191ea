#!/usr/bin/env bash
# From a fresh Debian 12 machine: installs what is missing, builds tandem,
# shows the devices and runs the main job on the configured device.
set -eu
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
build/tandem --config configs/default.ini devices
build/tandem --config configs/default.ini selftest
