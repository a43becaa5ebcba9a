#!/usr/bin/env bash
# Rebuild bmcrypt's test fixtures from nothing with the vendor compiler (tpu_mlir 1.30.2,
# BM1684X) and verify each one on the CPU simulator before it reaches the fixtures dir.
#
#   scripts/make-fixtures.sh                      # everything (first run: ~3 GB torch download)
#   WITH_LLM=0 scripts/make-fixtures.sh           # the MLP only; no torch (numpy stand-in)
#   MODELS="qwen2_dynamic" scripts/make-fixtures.sh
#   MODELS="share share_dynamic" scripts/make-fixtures.sh   # the share-cache layout + share_cache.json
#
# Environment:
#   OUT          where verified fixtures go            default tests/fixtures
#   WITH_LLM     0 = skip every LLM build               default 1
#   MODELS       space-separated subset of: mlp qwen2 qwen2_dynamic qwen2_sample share share_dynamic
#                (share: the two static share-cache builds; share_dynamic: the --dynamic one;
#                share_cache.json is rewritten whenever either is built, after checking the
#                builds not rebuilt in this run, taken from OUT, on the simulator too)
#   REPLACE      1 = overwrite a fixture in OUT whose content differs (default: refuse)
#   KEEP_BUILD   1 = keep the staging dir after success (it is always kept after a failure)
#   BMCRYPT_CACHE  cache root (venv, runtime, staging)  default ~/.cache/bmcrypt
#   PY           the Python 3.10 for the venv           default: pyenv's newest 3.10
#   SHARE_NET_CACHE  keep the share-cache nets compiled here across runs (keyed by the hash
#                of each net's ONNX and flags)           default: inside the staging dir
#
# Everything is built in a staging dir. A file reaches OUT only after it was verified, and
# only if OUT lacks it (or REPLACE=1 and its content differs). Rebuilds are not byte-identical
# (creation time; a few bytes of dynamic nets' IR), so files are compared by content
# (fixtures/same_content.py) and an existing file with the same content is kept as it is.
set -Eeuo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
TOOLS=$HERE/fixtures
CACHE=${BMCRYPT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bmcrypt}
OUT=${OUT:-$REPO/tests/fixtures}
WITH_LLM=${WITH_LLM:-1}
MODELS=${MODELS:-mlp qwen2 qwen2_dynamic qwen2_sample share share_dynamic}
CHIP=bm1684x
SEQ=64
# share-cache layout (LLM-TPU Qwen1_5 share_cache_demo): share length S, unshare lengths U
# (largest first; two builds with equal weights), the U of the --dynamic build
SHARE=32
UNSHARES="16 8"
DYN_UNSHARE=16

say() { printf '\n== %s  [%ss]\n' "$*" "$SECONDS" >&2; }
die() { echo "make-fixtures: error: $1" >&2; shift; for h in "$@"; do echo "hint: $h" >&2; done; exit 1; }
wants() { [[ " $MODELS " == *" $1 "* ]] && { [ "$1" = mlp ] || [ "$WITH_LLM" = 1 ]; }; }

# name of each LLM build, its llm_convert.py options, and its expected-tokens file
declare -A LLM_ARGS=(
  [qwen2]="-q bf16"
  [qwen2_dynamic]="-q bf16 --dynamic"
  [qwen2_sample]="-q bf16 --do_sample"
)
declare -A LLM_NAME=(
  [qwen2]=qwen2_tiny_bf16_seq64
  [qwen2_dynamic]=qwen2_tiny_bf16_seq64_dynamic
  [qwen2_sample]=qwen2_tiny_sample_bf16_seq64
)
declare -A LLM_JSON=(
  [qwen2]=qwen2_tiny_expected.json
  [qwen2_dynamic]=qwen2_tiny_bf16_seq64_dynamic_expected.json
  [qwen2_sample]=qwen2_tiny_sample_bf16_seq64_expected.json
)

for m in $MODELS; do
  case $m in mlp|share|share_dynamic) continue ;; esac
  [ -n "${LLM_ARGS[$m]:-}" ] || die "unknown model '$m'" "MODELS takes: mlp ${!LLM_ARGS[*]} share share_dynamic"
done

# ---------------------------------------------------------------- tools
say "runtime + compiler venv"
RUNTIME=$("$REPO/scripts/fetch-runtime.sh")
MODEL_TOOL=$RUNTIME/bin/model_tool
need_llm=0
for m in "${!LLM_ARGS[@]}" share share_dynamic; do wants "$m" && need_llm=1; done
VENV=$("$TOOLS/venv.sh" $([ "$need_llm" = 1 ] && echo llm))
# shellcheck disable=SC1091
source "$VENV/bin/activate"
export PATH=$TOOLS/bin:$PATH          # our `parallel` stand-in, for llm_convert.py
PYTHON=$VENV/bin/python
if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
  export PYTHONPATH=$TOOLS/torch-shim  # the ONNX front end imports torch for one numpy call
fi

mkdir -p "$CACHE" "$OUT"
STAGE=$(mktemp -d "$CACHE/fixtures-build.XXXXXX")
mkdir "$STAGE/ready"                   # verified files waiting to be installed into OUT
trap 'echo "make-fixtures: failed; build left in $STAGE" >&2' ERR

quietly() {  # $1 log, then a checker: the simulator is chatty, show only the checker's verdict
  local log=$1; shift
  if "$@" > "$log" 2>&1; then
    grep -E '^(check_mlp|llm_greedy|check_share|share_reference|coeff_compare|share_json):' "$log" >&2
    return
  fi
  tail -n 20 "$log" >&2
  die "verification failed: $*" "full log: $PWD/$log"
}

strip_kernel() {  # $1 compiled bmodel, $2 destination: a copy without the 5.6 MB kernel module
  cp "$1" "$2"
  "$MODEL_TOOL" --kernel_remove "$2" >/dev/null
}

# ---------------------------------------------------------------- MLP
build_mlp() {
  local w=$STAGE/mlp
  mkdir -p "$w" && cd "$w"
  say "mlp: ONNX, model_transform, model_deploy F16"
  "$PYTHON" "$TOOLS/gen_mlp.py" .
  model_transform.py --model_name mlp --model_def mlp.onnx --input_shapes '[[1,64]]' \
    --test_input mlp_in.npz --test_result mlp_top_out.npz --mlir mlp.mlir > transform.log 2>&1
  model_deploy.py --mlir mlp.mlir --quantize F16 --chip $CHIP --test_input mlp_in_f32.npz \
    --test_reference mlp_top_out.npz --model mlp_f16.bmodel > deploy.log 2>&1
  strip_kernel mlp_f16.bmodel mlp_bm1684x_f16_nokernel.bmodel
  quietly check.log "$PYTHON" "$TOOLS/check_mlp.py" "$RUNTIME" mlp_bm1684x_f16_nokernel.bmodel \
    mlp_in.npz mlp_ort_out.npz
  cp mlp_bm1684x_f16_nokernel.bmodel mlp.onnx mlp_in.npz mlp_ort_out.npz "$STAGE/ready/"
}

# ---------------------------------------------------------------- tiny Qwen2
checkpoint() {  # the tiny Qwen2 every LLM fixture is built from, in the current dir
  if [ ! -d tiny-qwen2 ]; then
    say "qwen2: random checkpoint + tokenizer"
    "$PYTHON" "$TOOLS/gen_qwen2.py" tiny-qwen2
    "$PYTHON" "$TOOLS/gen_tokenizer.py" tiny-qwen2
    mkdir -p "$STAGE/ready/tiny-qwen2-tokenizer"
    cp tiny-qwen2/{config.json,generation_config.json,chat_template.jinja,tokenizer.json,tokenizer_config.json} \
      "$STAGE/ready/tiny-qwen2-tokenizer/"
  fi
}

build_llm() {  # $1 key of LLM_ARGS
  local key=$1 name=${LLM_NAME[$1]} w=$STAGE/llm
  mkdir -p "$w" && cd "$w"
  checkpoint
  say "$name: llm_convert.py ${LLM_ARGS[$key]}"
  # shellcheck disable=SC2086
  llm_convert.py -m ./tiny-qwen2 -s $SEQ -c $CHIP ${LLM_ARGS[$key]} -o "out_$key" \
    > "convert_$key.log" 2>&1 < /dev/null || die "llm_convert.py failed" "see $w/convert_$key.log"
  local built
  built=$(ls "out_$key"/*.bmodel | head -n 1)
  strip_kernel "$built" "${name}_nokernel.bmodel"
}

verify_llm() {  # $1 key; the static build's tokens are the reference for the others
  local key=$1 name=${LLM_NAME[$1]} w=$STAGE/llm expect=()
  cd "$w"
  if [ "$key" != qwen2 ]; then
    local static
    for static in {"$STAGE/ready","$OUT","$REPO/tests/fixtures"}/"${LLM_JSON[qwen2]}"; do
      [ -f "$static" ] && break
    done
    expect=(--expect "$static")
  fi
  say "$name: greedy tokens on the simulator and in transformers"
  quietly "greedy_$key.log" "$PYTHON" "$TOOLS/llm_greedy.py" "$RUNTIME" "${name}_nokernel.bmodel" \
    "${LLM_JSON[$key]}" --name "${name}_nokernel.bmodel" --hf tiny-qwen2 "${expect[@]}"
  cp "${name}_nokernel.bmodel" "${LLM_JSON[$key]}" "$STAGE/ready/"
}

# ---------------------------------------------------------------- share-cache layout
share_file() {  # $1 U, $2 "dynamic" or empty
  echo "qwen2_tiny_share${SHARE}_unshare${1}_seq${SEQ}${2:+_dynamic}_nokernel.bmodel"
}

existing() {  # $1 fixture file name: the copy this run staged, else the one in OUT
  local d
  for d in "$STAGE/llm" "$OUT" "$REPO/tests/fixtures"; do
    [ -f "$d/$1" ] && { echo "$d/$1"; return; }
  done
  die "$1 is needed but was neither built now nor found in $OUT" \
    "add its MODELS name (share, share_dynamic or qwen2) to this run"
}

share_build() {  # $1 U, $2 "dynamic" or empty: export + compile one share-cache bmodel
  local u=$1 dyn=${2:-} f
  f=$(share_file "$u" "$dyn")
  say "$f: ONNX per net, model_transform/model_deploy BF16, model_tool --combine"
  [ -d "onnx_u$u" ] || "$PYTHON" "$TOOLS/gen_share_onnx.py" tiny-qwen2 "onnx_u$u" \
    --share $SHARE --unshare "$u" --seq $SEQ >&2
  "$TOOLS/compile_share.sh" "onnx_u$u" "$f" ${dyn:+--dynamic}
}

build_share() {
  local w=$STAGE/llm u f results=() statics=() dyn std
  mkdir -p "$w" && cd "$w"
  checkpoint
  export MODEL_TOOL NET_CACHE=${SHARE_NET_CACHE:-$w/share_nets}
  say "share: prefix, questions and reference answers (transformers float32, greedy)"
  quietly share_reference.log "$PYTHON" "$TOOLS/share_reference.py" tiny-qwen2 share_reference.json
  for u in $UNSHARES; do
    f=$(share_file "$u")
    if wants share; then share_build "$u"; cp "$f" "$STAGE/ready/"; fi
    statics+=("$(existing "$f")")
  done
  dyn=$(share_file $DYN_UNSHARE dynamic)
  if wants share_dynamic; then share_build $DYN_UNSHARE dynamic; cp "$dyn" "$STAGE/ready/"; fi
  dyn=$(existing "$dyn")
  std=$(existing "${LLM_NAME[qwen2]}_nokernel.bmodel")
  say "share: every build on the simulator (one share prefill, three questions each)"
  for f in "${statics[@]}" "$dyn"; do
    quietly "check_$(basename "$f").log" "$PYTHON" "$TOOLS/check_share.py" "$RUNTIME" "$f" \
      share_reference.json "result_$(basename "$f").json"
    results+=("result_$(basename "$f").json")
  done
  quietly check_standard.log "$PYTHON" "$TOOLS/check_share.py" "$RUNTIME" "$std" \
    share_reference.json result_standard.json --standard
  say "share: equal weights in the share builds"
  quietly coeff.log "$PYTHON" "$TOOLS/coeff_compare.py" "$MODEL_TOOL" "${statics[@]}" --json coeff.json
  # recorded, not required: does the dynamic build carry the same weights as well?
  "$PYTHON" "$TOOLS/coeff_compare.py" "$MODEL_TOOL" "${statics[0]}" "$dyn" --json coeff_dynamic.json \
    > coeff_dynamic.log 2>&1 || true
  quietly share_json.log "$PYTHON" "$TOOLS/share_json.py" "$STAGE/ready/share_cache.json" \
    --reference share_reference.json --coeff coeff.json --dynamic-coeff coeff_dynamic.json \
    --version "$("$MODEL_TOOL" --info "${statics[0]}" | sed -n 's/^bmodel version: //p')" \
    --share "${results[@]:0:${#statics[@]}}" --dynamic "${results[-1]}" --standard result_standard.json
}

# ---------------------------------------------------------------- install into OUT
same_info() {  # model_tool --info of two bmodels, equal but for the creation time
  diff <("$MODEL_TOOL" --info "$1" | grep -v '^create time') \
       <("$MODEL_TOOL" --info "$2" | grep -v '^create time') >/dev/null
}

install_ready() {
  say "install into $OUT"
  local f rel dest
  while IFS= read -r rel; do
    f=$STAGE/ready/$rel dest=$OUT/$rel
    mkdir -p "$(dirname "$dest")"
    if [ -e "$dest" ]; then
      if "$PYTHON" "$TOOLS/same_content.py" "$f" "$dest" && { [[ $f != *.bmodel ]] || same_info "$f" "$dest"; }; then
        echo "  unchanged  $rel (same content as the existing file, kept)" >&2
        continue
      fi
      [ "${REPLACE:-0}" = 1 ] || die "$rel: new build differs from $dest" \
        "compare them; rerun with REPLACE=1 to overwrite" "the new file is in $STAGE/ready"
    fi
    cp "$f" "$dest.tmp.$$" && mv "$dest.tmp.$$" "$dest"
    echo "  installed  $rel ($(stat -c %s "$dest") bytes)" >&2
  done < <(cd "$STAGE/ready" && find . -type f -printf '%P\n' | sort)
}

# ---------------------------------------------------------------- run
wants mlp && build_mlp
for key in qwen2 qwen2_dynamic qwen2_sample; do
  if wants "$key"; then build_llm "$key"; verify_llm "$key"; fi
done
if wants share || wants share_dynamic; then build_share; fi
install_ready
if [ "${KEEP_BUILD:-0}" = 1 ]; then echo "build kept in $STAGE" >&2; else rm -rf "$STAGE"; fi
say "done"
