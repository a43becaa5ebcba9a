# Cross-compiling for 64-bit Arm Linux (Sophgo SoC boxes: BM1684X, BM1688) on an x86-64 Debian
# host with Debian's cross toolchain and multiarch arm64 libraries, both installed by
# scripts/install-cross-deps.sh:
#
#   cmake -S . -B build/sdk-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake ...
#
# Multiarch keeps the arm64 libraries in /usr/lib/aarch64-linux-gnu of the host itself, so there
# is no separate sysroot; CMAKE_LIBRARY_ARCHITECTURE makes find_library look there first.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# Host programs (flatc) from the host; libraries only from the target's directories, so an
# x86-64 library is never picked by mistake.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# pkg-config (which find modules such as FindOpenSSL consult) sees only the arm64 .pc files.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)

# `ctest` and try_run run target programs through user-mode qemu (Debian's qemu-user), with the
# multiarch root as the library prefix: its dynamic loader matches libc6:arm64 (the loader in
# /usr/aarch64-linux-gnu is the cross package's, and mixing the two hangs in pthread_create).
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /)
