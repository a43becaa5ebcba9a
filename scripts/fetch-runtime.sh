#!/usr/bin/env bash
# Fetch the vendor runtime + BM1684X CPU simulator (cmodel) + model_tool from the PyPI wheel
# tpu_mlir==1.30.2, extract only what is needed, and print the directory that holds bin/ and lib/.
#
#   scripts/fetch-runtime.sh            # idempotent; cached under ${XDG_CACHE_HOME:-~/.cache}/bmcrypt
#
# Vendor binaries are never committed: they live in the user's cache only.
set -euo pipefail
VERSION=1.30.2
CACHE=${BMCRYPT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bmcrypt}
DEST=$CACHE/tpu_mlir-$VERSION
PY=${PYTHON:-python3}

if [ -f "$DEST/.complete" ]; then echo "$DEST"; exit 0; fi

mkdir -p "$CACHE/wheels"
wheel=$(ls "$CACHE"/wheels/tpu_mlir-$VERSION-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
  echo "fetch-runtime: downloading tpu_mlir==$VERSION from PyPI (~312 MB, once)" >&2
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.10 \
      --implementation cp "tpu_mlir==$VERSION" -d "$CACHE/wheels" >&2
  wheel=$(ls "$CACHE"/wheels/tpu_mlir-$VERSION-*.whl | head -n 1)
fi

tmp=$(mktemp -d "$CACHE/.extract.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Only the members we need; never the wheel's own glibc pieces (they crash on Debian's glibc).
"$PY" - "$wheel" "$tmp" <<'PYEOF'
import os, stat, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
members = ["bin/model_tool"] + ["lib/" + n for n in (
    "libbmrt.so", "libbmrt.so.1.0", "libbmlib.so", "libbmlib.so.0", "libbmlib_bm1684x.so.0",
    "libcmodel.so", "libcmodel_bm1684x.so", "libcpuop.so", "libcpuop.so.1.0.0",
    "third_party/libomp.so.5")]
with zipfile.ZipFile(wheel) as z:
    for m in members:
        target = os.path.join(out, m)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open("tpu_mlir/" + m) as src, open(target, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        os.chmod(target, 0o755)
PYEOF
rm -rf "$DEST"
mv "$tmp" "$DEST"
trap - EXIT
touch "$DEST/.complete"
echo "$DEST"
