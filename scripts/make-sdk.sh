#!/usr/bin/env bash
# Build the C SDK tarballs: dist/bmcrypt-sdk-<version>-<arch>.tar.gz for each ARCH given
# (default: x86_64 aarch64). aarch64 is cross-built with Debian's cross toolchain
# (scripts/install-cross-deps.sh installs it). Prints the tarballs' paths, one per line.
#
#   scripts/make-sdk.sh [x86_64|aarch64]...
#
# Each build keeps its directory, build/sdk-<arch>, so a second run only relinks what changed.
# The same build also holds the native tests and benchmark for that architecture
# (build/sdk-<arch>/tests/native/), which tests/test_sdk.py runs against the unpacked tarball.
#
# What the SDK links and why: Crypto++ comes from the target's Debian package as its static
# archive, and libstdc++/libgcc statically too, so that libbmcrypt.so needs nothing but glibc on
# the device (a BM1684X/BM1688 box runs its own Ubuntu, whose libcrypto++ has another soname).
# Only the C API is exported (csrc/plugin/exports.map), so the static copies stay private.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
version=$(sed -n 's/^version = "\([^"]*\)"$/\1/p' pyproject.toml)
[ $# -gt 0 ] || set -- x86_64 aarch64
jobs=$(nproc 2>/dev/null || echo 2)
generator=(); command -v ninja >/dev/null && generator=(-G Ninja)

for arch in "$@"; do
  case $arch in
    x86_64) toolchain=(); cc=gcc; triplet=x86_64-linux-gnu ;;
    aarch64) toolchain=(-DCMAKE_TOOLCHAIN_FILE="$root/cmake/aarch64-linux-gnu.cmake")
             cc=aarch64-linux-gnu-gcc; triplet=aarch64-linux-gnu ;;
    *) echo "make-sdk: error: unknown architecture '$arch' (x86_64 or aarch64)" >&2; exit 2 ;;
  esac
  if ! command -v "$cc" >/dev/null; then
    echo "make-sdk: error: $cc not found" >&2
    echo "make-sdk: hint: run scripts/install-cross-deps.sh (and scripts/install-system-deps.sh)" >&2
    exit 1
  fi
  cryptopp=/usr/lib/$triplet/libcryptopp.a
  [ -f "$cryptopp" ] || { echo "make-sdk: error: $cryptopp is missing (libcrypto++-dev for $arch)" >&2; exit 1; }

  build=build/sdk-$arch
  name=bmcrypt-sdk-$version-$arch
  stage=$build/stage/$name
  echo "make-sdk: $name" >&2
  mkdir -p "$build"
  cmake -S . -B "$build" "${generator[@]}" "${toolchain[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DBMCRYPT_BUILD_PYTHON=OFF -DBMCRYPT_BUILD_TESTS=ON -DBMCRYPT_INSTALL_ROOT= \
    -DCRYPTOPP_LIBRARY="$cryptopp" \
    -DCMAKE_SHARED_LINKER_FLAGS="-static-libstdc++ -static-libgcc" >"$build.log" 2>&1 \
    || { tail -30 "$build.log" >&2; echo "make-sdk: error: cmake could not configure $arch (log: $build.log)" >&2; exit 1; }
  cmake --build "$build" -j "$jobs" --target bmcrypt test_vectors test_plugin bench_decrypt \
    >>"$build.log" 2>&1 \
    || { tail -40 "$build.log" >&2; echo "make-sdk: error: the $arch build failed (log: $build.log)" >&2; exit 1; }

  rm -rf "$build/stage"
  cmake --install "$build" --prefix "$stage" >>"$build.log" 2>&1
  # bmcrypt-verify is built the way an SDK user builds: against the staged header and library
  # only, found next to it at run time through $ORIGIN.
  mkdir -p "$stage/bin" "$stage/share/bmcrypt"
  "$cc" -std=c11 -O2 -Wall -Wextra -Werror sdk/bmcrypt-verify.c -o "$stage/bin/bmcrypt-verify" \
    -I"$stage/include" -L"$stage/lib" -lbmcrypt -Wl,-rpath,'$ORIGIN/../lib'
  cp sdk/bmcrypt-verify.c "$stage/share/bmcrypt/"
  # For cross-building against this SDK with CMake on a Debian PC (docs/sdk.md).
  [ "$arch" = x86_64 ] || cp "cmake/$triplet.cmake" "$stage/share/bmcrypt/"
  sed "s/@VERSION@/$version/g; s/@ARCH@/$arch/g" sdk/README.md >"$stage/README.md"
  mkdir -p dist
  tar -czf "dist/$name.tar.gz" --owner=0 --group=0 --sort=name -C "$build/stage" "$name"
  echo "$root/dist/$name.tar.gz"
done
