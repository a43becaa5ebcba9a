#!/usr/bin/env bash
# `make demo`: the main job end to end on shipped fixtures, with the real vendor runtime.
# Every step is printed as the command a user would type, then run for real.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
unset BMCRYPT_KEY_FILE BMCRYPT_PASSPHRASE
W=${BMCRYPT_DEMO_DIR:-out/demo}  # where the demo's files go (tests/test_demo.py points it elsewhere)
rm -rf "$W" && mkdir -p "$W"
cp tests/fixtures/mlp_bm1684x_f16_nokernel.bmodel "$W/mlp.bmodel"
cp tests/fixtures/qwen2_tiny_bf16_seq64_nokernel.bmodel "$W/qwen2.bmodel"

# The command line goes to stderr: a step's stdout may be redirected into a file.
step() { printf '\n\033[1m$ %s\033[0m\n' "$*" >&2; "$@"; }

step bmcrypt keygen -o "$W/demo.key"
step bmcrypt inspect "$W/mlp.bmodel"
step bmcrypt encrypt "$W/mlp.bmodel" --key "$W/demo.key"
step ls -l "$W"
step bmcrypt inspect "$W/mlp.bmodel"
step bmcrypt verify "$W/mlp.bmodel" --key "$W/demo.key"
step bmcrypt run "$W/mlp.bmodel" --key "$W/demo.key" --input tests/fixtures/mlp_in.npz \
    --output "$W/mlp_out.npz"
step python - "$W/mlp_out.npz" <<'PY'
import sys
import numpy as np
ours = np.load(sys.argv[1])["y_Gemm_f32"].astype(np.float32)
ref = np.load("tests/fixtures/mlp_ort_out.npz")["y"]
cos = float((ours * ref).sum() / np.linalg.norm(ours) / np.linalg.norm(ref))
print(f"encrypted model on the simulator vs onnxruntime: max abs error "
      f"{np.abs(ours - ref).max():.2e}, cosine {cos:.6f}")
PY

step bmcrypt encrypt "$W/qwen2.bmodel" --key "$W/demo.key"
step bmcrypt chat "$W/qwen2.bmodel" --key "$W/demo.key" \
    --tokenizer tests/fixtures/tiny-qwen2-tokenizer --prompt-ids 1,17,42,99,256,3 \
    --max-new-tokens 16 --json > "$W/chat.json"
step python - "$W/chat.json" <<'PY'
import json
import sys
got = json.load(open(sys.argv[1]))["tokens"]
want = json.load(open("tests/fixtures/qwen2_tiny_expected.json"))["greedy_tokens"]
print("generated:", got)
print("reference:", want, "(HF transformers on the same checkpoint)")
sys.exit(0 if got == want else "the encrypted model's tokens differ from the reference")
PY
step bmcrypt verify "$W/qwen2.bmodel" --key "$W/demo.key"

# Sequence sharing (LLM-TPU's share-cache workflow): two builds of the same weights, a prefix
# prefilled once, three questions against it, on the encrypted files.
cp tests/fixtures/qwen2_tiny_share32_unshare16_seq64_nokernel.bmodel "$W/share_u16.bmodel"
cp tests/fixtures/qwen2_tiny_share32_unshare8_seq64_nokernel.bmodel "$W/share_u8.bmodel"
step bmcrypt encrypt "$W/share_u16.bmodel" "$W/share_u8.bmodel" --key "$W/demo.key"
step bmcrypt inspect "$W/share_u16.bmodel" "$W/share_u8.bmodel" --key "$W/demo.key" \
    | grep -A3 "^weights of the"  # equal weights: libbmrt keeps them once when both load
ids() {  # ids prefix | ids N: the fixture's prefix or question N, as ID,ID,…
  python -c "import json, sys; d = json.load(open('tests/fixtures/share_cache.json'))
ids = d['prefix_ids'] if sys.argv[1] == 'prefix' else d['questions'][int(sys.argv[1])]
print(','.join(map(str, ids)))" "$1"
}
step bmcrypt chat "$W/share_u16.bmodel" --key "$W/demo.key" \
    --tokenizer tests/fixtures/tiny-qwen2-tokenizer --share-prefix-ids "$(ids prefix)" \
    --prompt-ids "$(ids 0)" --prompt-ids "$(ids 1)" --prompt-ids "$(ids 2)" \
    --max-new-tokens 12 --json > "$W/share.json"
step python - "$W/share.json" <<'PY'
import json
import sys
answers = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
want = json.load(open("tests/fixtures/share_cache.json"))["reference"]
for a, w in zip(answers, want, strict=True):
    print(f"after a shared prefix of {a['shared_prefix_tokens']} tokens:", a["tokens"],
          "= reference" if a["tokens"] == w else f"!= reference {w}")
sys.exit(0 if [a["tokens"] for a in answers] == want else "shared-prefix answers differ")
PY
printf '\ndemo done: files in %s\n' "$W"
