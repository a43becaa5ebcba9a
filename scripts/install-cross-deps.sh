#!/usr/bin/env bash
# Install what the aarch64 SDK is cross-built and tested with (idempotent; apt-get only when
# something is missing): Debian's cross toolchain, Crypto++ for arm64 through multiarch, and
# qemu-user to run the aarch64 tests on an x86 host.
set -euo pipefail
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
need=()
command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -f /usr/lib/aarch64-linux-gnu/libcryptopp.a ] || need+=(libcrypto++-dev:arm64)
# qemu-aarch64 -L / runs arm64 programs with the multiarch loader and libraries.
[ -e /lib/ld-linux-aarch64.so.1 ] || need+=(libc6:arm64)
[ -e /usr/lib/aarch64-linux-gnu/libstdc++.so.6 ] || need+=(libstdc++6:arm64)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
command -v pkg-config >/dev/null || need+=(pkg-config)
[ ${#need[@]} -eq 0 ] && exit 0
echo "install-cross-deps: installing ${need[*]}" >&2
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
fi
# Another apt run (an install on the same machine) holds the lock for a while: wait for it.
apt=(apt-get -o DPkg::Lock::Timeout=600)
$SUDO "${apt[@]}" update -qq
DEBIAN_FRONTEND=noninteractive $SUDO "${apt[@]}" install -y -qq --no-install-recommends \
  "${need[@]}" >&2
