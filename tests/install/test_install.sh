#!/usr/bin/env bash
# Installs the build into a temporary prefix, then builds a consumer project
# against it with find_package(tandem) (shared and static) and with pkg-config.
# Usage: test_install.sh BUILD_DIR SOURCE_DIR [CFLAGS]  (CFLAGS: e.g. sanitizer flags)
set -eu
build=$1
source=$2
flags=${3:-}
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/tandem include/tandem/tandem.h share/tandem/configs/default.ini; do
    [ -e "$prefix/$f" ] || { echo "FAILED: $f was not installed"; exit 1; }
done
libdir=$(dirname "$(find "$prefix" -name libtandem.so | head -1)")
cmake -S "$source/tests/install/consumer" -B "$prefix/consumer" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_RPATH="$libdir" -DCMAKE_C_FLAGS="$flags" \
    -DCMAKE_EXE_LINKER_FLAGS="$flags" >/dev/null
cmake --build "$prefix/consumer" >/dev/null
"$prefix/consumer/consumer_shared"
"$prefix/consumer/consumer_static"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc $flags "$source/tests/install/consumer/main.c" -o "$prefix/consumer_pc" \
    $(pkg-config --cflags --libs tandem) -Wl,-rpath,"$libdir"
"$prefix/consumer_pc"
cc $flags "$source/tests/install/consumer/main.c" -o "$prefix/consumer_pc_static" \
    $(pkg-config --cflags tandem) "$libdir/libtandem.a" $(pkg-config --libs-only-l --static tandem | sed 's/-ltandem//')
"$prefix/consumer_pc_static"
echo "install: find_package(tandem) shared and static, pkg-config shared and static all work"
