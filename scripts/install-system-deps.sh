#!/usr/bin/env bash
# Install the Debian packages bmcrypt builds and tests with (idempotent; apt-get only when missing).
set -euo pipefail
need=()
[ -f /usr/include/cryptopp/aes.h ] || need+=(libcrypto++-dev)
command -v flatc >/dev/null || need+=(flatbuffers-compiler)
[ -f /usr/include/flatbuffers/flatbuffers.h ] || need+=(libflatbuffers-dev)
command -v cmake >/dev/null || need+=(cmake)
command -v g++ >/dev/null || need+=(g++)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
echo "install-system-deps: installing ${need[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
