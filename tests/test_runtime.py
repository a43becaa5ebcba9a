"""bmcrypt.runtime against the real vendor runtime on its CPU simulator.

One Runtime holding both fixture files is shared by the module; tests that need a fresh one
close it first (two live runtimes corrupt each other on the simulator). Loads of broken files
happen in child processes. ``vendor_dir`` comes from conftest.py.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bmcrypt.errors import VendorRuntimeError
from bmcrypt.runtime import (
    DType,
    LoadReport,
    Runtime,
    _api,
    bf16_from_f32,
    check_load,
    f32_from_bf16,
    find_lib_dir,
    find_model_tool,
    run_isolated,
    simulator_cache_dir,
)
from bmcrypt.runtime.devmem import DeviceBuffer

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
MLP = FIX / "mlp_bm1684x_f16_nokernel.bmodel"
QWEN = FIX / "qwen2_tiny_bf16_seq64_nokernel.bmodel"
QWEN_SEQ = 64


# ---------------------------------------------------------------------------- fixtures


class SharedRuntime:
    """One Runtime with both fixtures loaded, reopened on demand.

    Two live runtimes in one process corrupt each other on the simulator (and Runtime refuses
    a second one), so tests that need a fresh runtime ``release()`` the shared one first.
    """

    def __init__(self, runtime_dir: Path) -> None:
        self.runtime_dir = runtime_dir
        self._rt: Runtime | None = None

    def get(self) -> Runtime:
        if self._rt is None or self._rt.closed:
            self._rt = Runtime(self.runtime_dir)
            self._rt.load(MLP)
            self._rt.load(QWEN)
        return self._rt

    def release(self) -> None:
        if self._rt is not None:
            self._rt.close()


@pytest.fixture(scope="module")
def shared(vendor_dir: Path):
    holder = SharedRuntime(vendor_dir)
    yield holder
    holder.release()


@pytest.fixture
def rt(shared: SharedRuntime) -> Runtime:
    return shared.get()


@pytest.fixture
def fresh(shared: SharedRuntime, vendor_dir: Path):
    """A factory of new runtimes (the shared one is closed first); all closed afterwards."""
    shared.release()
    made: list[Runtime] = []

    def make(**kwargs) -> Runtime:
        made.append(Runtime(vendor_dir, **kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


def model_tool_nets(vendor_dir: Path, path: Path) -> list[str]:
    tool = find_model_tool(vendor_dir)
    if tool is None:
        pytest.skip("model_tool is not part of this runtime directory")
    info = subprocess.run([str(tool), "--info", str(path)], capture_output=True, text=True,
                          check=True, timeout=60).stdout
    return re.findall(r"^net \d+: \[([^\]]+)\]", info, flags=re.M)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def prompt_ids() -> np.ndarray:
    expected = json.loads((FIX / "qwen2_tiny_expected.json").read_text())
    ids = np.zeros((1, QWEN_SEQ), np.int32)
    ids[0, : len(expected["prompt_ids"])] = expected["prompt_ids"]
    return ids


# ---------------------------------------------------------------------------- no runtime needed


def test_missing_runtime_dir_gives_hint(tmp_path: Path) -> None:
    with pytest.raises(VendorRuntimeError) as e:
        Runtime(tmp_path)
    assert str(tmp_path) in str(e.value)
    assert_hint_is_for_an_installed_user(e.value.hint)


def assert_hint_is_for_an_installed_user(hint: str | None) -> None:
    """The hint names what works without a source checkout: no script of the source tree."""
    assert hint
    for what in ("--runtime", "BMCRYPT_RUNTIME_DIR", "/opt/sophon/libsophon-current/lib"):
        assert what in hint, hint
    assert "scripts/" not in hint and ".sh" not in hint, hint


def test_runtime_not_found_anywhere_gives_an_installed_users_hint(tmp_path: Path,
                                                                  monkeypatch) -> None:
    import bmcrypt.runtime.locate as locate

    monkeypatch.delenv("BMCRYPT_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("BMCRYPT_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(locate, "LIBSOPHON_LIB", tmp_path / "no-libsophon")
    with pytest.raises(VendorRuntimeError) as e:
        find_lib_dir()
    assert "vendor runtime not found" in str(e.value)
    assert_hint_is_for_an_installed_user(e.value.hint)


def test_env_var_naming_an_empty_dir_is_an_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BMCRYPT_RUNTIME_DIR", str(tmp_path))
    with pytest.raises(VendorRuntimeError, match="BMCRYPT_RUNTIME_DIR"):
        find_lib_dir()


def test_libs_may_sit_under_lib(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    for name in ("libbmlib.so", "libbmrt.so"):
        (tmp_path / "lib" / name).write_bytes(b"")
    assert find_lib_dir(tmp_path) == (tmp_path / "lib").resolve()


def test_simulator_cache_follows_bmcrypt_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BMCRYPT_CACHE", str(tmp_path))
    assert simulator_cache_dir() == tmp_path / "tpu_mlir-1.30.2"
    monkeypatch.delenv("BMCRYPT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert simulator_cache_dir() == tmp_path / "bmcrypt" / "tpu_mlir-1.30.2"


def test_bf16_conversion_rounds_to_nearest_even() -> None:
    x = np.array([1.0, -2.5, 3.1415927, 1 + 2**-8, 1 + 3 * 2**-8, np.inf, np.nan], np.float32)
    bits = bf16_from_f32(x)
    assert bits.dtype == np.uint16
    assert bits[:2].tolist() == [0x3F80, 0xC020]
    assert bits[3] == 0x3F80 and bits[4] == 0x3F82  # ties go to the even mantissa
    back = f32_from_bf16(bits)
    assert back[5] == np.inf and np.isnan(back[6])
    assert abs(back[2] - 3.140625) < 1e-7


def test_struct_layouts_match_the_vendor_abi() -> None:
    assert ctypes.sizeof(_api.BmShape) == 36
    assert ctypes.sizeof(_api.BmDeviceMem) == 24
    assert ctypes.sizeof(_api.BmTensor) == 72
    assert _api.BmTensor.device_mem.offset == 40
    assert ctypes.sizeof(_api.BmStageInfo) == 32


# ---------------------------------------------------------------------------- loading


@pytest.mark.runtime
@pytest.mark.parametrize("path", [MLP, QWEN], ids=["mlp", "qwen2"])
def test_plain_load_lists_nets_like_model_tool(fresh, vendor_dir: Path, path: Path) -> None:
    rt = fresh()
    rt.load(path)
    assert rt.net_names() == model_tool_nets(vendor_dir, path)
    assert rt.trace() == 0


@pytest.mark.runtime
def test_shared_runtime_holds_both_files(rt: Runtime) -> None:
    assert rt.net_names()[0] == "mlp" and "block_cache_1" in rt.net_names()
    assert rt.trace() == 0


@pytest.mark.runtime
def test_second_live_runtime_is_refused(rt: Runtime, vendor_dir: Path) -> None:
    # On the simulator a second live runtime makes the first one's nets return garbage.
    with pytest.raises(VendorRuntimeError, match="already open on device 0"):
        Runtime(vendor_dir)


@pytest.mark.runtime
def test_net_info_is_typed(rt: Runtime) -> None:
    info = rt.net_info("block_cache_0")
    assert not info.dynamic and info.stage_count == 1 and info.addr_mode == 1
    assert [t.name for t in info.inputs] == [
        "input_states", "position_ids", "attention_mask", "history_k", "history_v"]
    assert [t.dtype for t in info.inputs] == [DType.BF16, DType.I32, DType.BF16, DType.BF16,
                                              DType.BF16]
    assert info.inputs[2].shapes == ((1, 1, 1, QWEN_SEQ + 1),)
    assert info.inputs[3].max_bytes == QWEN_SEQ * 64 * 2
    assert info.outputs[1].name == "k_cache" and info.outputs[1].scale == 1.0
    assert rt.net_info("embedding").addr_mode == 0
    with pytest.raises(VendorRuntimeError, match="no net named 'nope'"):
        rt.net_info("nope")


@pytest.mark.runtime
def test_missing_file_fails_with_vendor_reason_and_stays_quiet(rt: Runtime, tmp_path: Path,
                                                               capfd) -> None:
    # A missing file is refused cleanly by the loader (no exit, no crash): safe in-process.
    before = rt.net_names()
    with pytest.raises(VendorRuntimeError, match="open failed") as e:
        rt.load(tmp_path / "absent.bmodel")
    assert "vendor runtime output" in "\n".join(e.value.__notes__)
    assert capfd.readouterr() == ("", "")
    assert rt.net_names() == before


@pytest.mark.runtime
def test_broken_files_fail_in_child_not_in_parent(vendor_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "truncated.bmodel"
    broken.write_bytes(QWEN.read_bytes()[: QWEN.stat().st_size // 2])
    with pytest.raises(VendorRuntimeError, match="broken"):
        run_isolated(check_load, str(broken), runtime_dir=str(vendor_dir))
    # A FlatBuffer of zeros makes the vendor loader itself segfault: the parent must survive.
    data = bytearray(MLP.read_bytes())
    header_size, fb_size = struct.unpack_from("<II", data, 4)
    data[header_size:header_size + fb_size] = bytes(fb_size)
    zeroed = tmp_path / "zero_flatbuffer.bmodel"
    zeroed.write_bytes(data)
    with pytest.raises(VendorRuntimeError, match=r"crashed with SIGSEGV.*is broken"):
        run_isolated(check_load, str(zeroed), runtime_dir=str(vendor_dir))
    # ... while the same path through the same machinery succeeds for an intact file.
    report = run_isolated(check_load, str(MLP), runtime_dir=str(vendor_dir))
    assert report == LoadReport(nets=["mlp"], trace_errors=0)


def test_child_crash_becomes_vendor_runtime_error() -> None:
    with pytest.raises(VendorRuntimeError, match="crashed with SIGABRT"):
        run_isolated(os.abort)
    with pytest.raises(VendorRuntimeError, match="exited with status 3"):
        run_isolated(os._exit, 3)


@pytest.mark.runtime
@pytest.mark.parametrize("how, code", [("atexit", 0), ("exit_now", 3)])
def test_unclosed_runtime_exits_cleanly_and_quietly(vendor_dir: Path, how: str,
                                                    code: int) -> None:
    child = subprocess.run([sys.executable, str(ROOT / "tests" / "runtime_child.py"),
                            str(vendor_dir), str(MLP), how],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == code, child.stderr  # not 139: the simulator was shut down
    assert child.stdout == ""  # not even the vendor's exit-time "cmodel_deinit complete"
    assert child.stderr.strip() == "child done"


def test_run_isolated_from_an_unguarded_script(tmp_path: Path) -> None:
    # multiprocessing's spawn would re-run this script in the child and fail; we must not.
    script = tmp_path / "unguarded.py"
    script.write_text("import os\nfrom bmcrypt.runtime import run_isolated\n"
                      "print(run_isolated(os.getpid) != os.getpid())\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "True\n"


@pytest.mark.runtime
def test_second_runtime_dir_in_one_process_is_refused(rt: Runtime, tmp_path: Path) -> None:
    for name in ("libbmlib.so", "libbmrt.so"):
        (tmp_path / name).symlink_to(rt.lib_dir / name)
    with pytest.raises(VendorRuntimeError, match="already uses the vendor runtime"):
        Runtime(tmp_path, exclusive=False)


# ---------------------------------------------------------------------------- running


@pytest.mark.runtime
def test_mlp_matches_onnxruntime(rt: Runtime) -> None:
    x = np.load(FIX / "mlp_in.npz")["x"]
    want = np.load(FIX / "mlp_ort_out.npz")["y"]
    (got,) = rt.run("mlp", [x])
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.abs(got - want).max() <= 1e-2  # F16 on the simulator: about 2e-3
    assert cosine(got, want) > 0.999


@pytest.mark.runtime
def test_load_bytes_gives_bit_identical_outputs(shared: SharedRuntime, fresh) -> None:
    x = np.load(FIX / "mlp_in.npz")["x"]
    (from_file,) = shared.get().run("mlp", {"x": x})
    shared.release()
    rt = fresh()
    rt.load_bytes(MLP.read_bytes())
    (from_memory,) = rt.run("mlp", {"x": x})
    assert from_memory.tobytes() == from_file.tobytes()


@pytest.mark.runtime
def test_decrypt_callback_and_decrypt_lib_are_called(fresh, tmp_path: Path) -> None:
    # A plain file loads through an identity decryptor: header tail and FlatBuffer go through it
    # (coeffs with encrypt_mode 0 do not), which exercises both function-pointer paths.
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    seen: list[int] = []

    @_api.DECRYPT_FUNC
    def identity(data, size, out_len):
        seen.append(size)
        out = libc.malloc(max(1, size))  # the runtime free()s what we return
        ctypes.memmove(out, data, size)
        out_len[0] = size
        return out

    with fresh() as rt:
        rt.load_with_decrypt(MLP, ctypes.cast(identity, ctypes.c_void_p).value)
        assert rt.net_names() == ["mlp"] and rt.trace() == 0
    assert seen[0] == 56 and len(seen) == 2

    if shutil.which("cc") is None:
        pytest.skip("no C compiler for the decrypt-library half")
    src = tmp_path / "identity.c"
    src.write_text(
        "#include <stdint.h>\n#include <stdlib.h>\n#include <string.h>\n"
        "uint8_t* decrypt(const uint8_t* in, uint64_t n, uint64_t* out_len) {\n"
        "  uint8_t* p = malloc(n ? n : 1); memcpy(p, in, n); *out_len = n; return p; }\n")
    lib = tmp_path / "libidentity.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    with fresh() as rt:
        rt.load_with_decrypt_lib(MLP, lib)
        assert rt.net_names() == ["mlp"] and rt.trace() == 0


@pytest.mark.runtime
def test_bf16_io_embedding_and_lm_head(rt: Runtime) -> None:
    ids = prompt_ids()
    (emb,) = rt.run("embedding", [ids])
    assert emb.dtype == np.uint16 and emb.shape == (1, QWEN_SEQ, 128)
    assert np.isfinite(f32_from_bf16(emb)).all() and f32_from_bf16(emb).std() > 0
    (tok,) = rt.run("lm_head", [emb[:, 0]])
    assert tok.dtype == np.int32 and tok.shape == (1, 1)


@pytest.mark.runtime
def test_prefill_predicts_the_reference_token(rt: Runtime) -> None:
    expected = json.loads((FIX / "qwen2_tiny_expected.json").read_text())
    n = len(expected["prompt_ids"])
    (hidden,) = rt.run("embedding", [prompt_ids()])
    positions = np.zeros((1, QWEN_SEQ), np.int32)
    positions[0, :n] = np.arange(n)
    mask = np.full((1, 1, QWEN_SEQ, QWEN_SEQ), -10000.0, np.float32)
    for i in range(n):
        mask[0, 0, i, : i + 1] = 0.0
    for block in ("block_0", "block_1"):
        hidden, _k, _v = rt.run(block, [hidden, positions, bf16_from_f32(mask)])
    (tok,) = rt.run("lm_head", [hidden[:, n - 1]])
    assert int(tok[0, 0]) == expected["greedy_tokens"][0]


@pytest.mark.runtime
def test_run_rejects_wrong_inputs(rt: Runtime) -> None:
    ids = prompt_ids()
    with pytest.raises(VendorRuntimeError, match="must be I32"):
        rt.run("embedding", [ids.astype(np.int64)])
    with pytest.raises(VendorRuntimeError, match="use bf16_from_f32"):
        rt.run("lm_head", [np.zeros((1, 128), np.float32)])
    with pytest.raises(VendorRuntimeError, match="fit no stage"):
        rt.run("embedding", [ids[:, :10]])
    with pytest.raises(VendorRuntimeError, match="takes 1 inputs"):
        rt.run("embedding", [ids, ids])
    with pytest.raises(VendorRuntimeError, match="missing \\['input_ids'\\]"):
        rt.run("embedding", {"ids": ids})


# ---------------------------------------------------------------------------- device memory


@pytest.mark.runtime
def test_launch_tensor_ex_on_device_buffers_matches_launch_data(rt: Runtime) -> None:
    ids = prompt_ids()
    (want,) = rt.run("embedding", [ids])
    with rt.alloc(ids.nbytes) as dev_in, rt.alloc(want.nbytes) as dev_out:
        dev_in.upload(ids)
        dev_out.fill(0xFFFF, width=2)
        shapes = rt.launch_tensors("embedding", [dev_in], [dev_out])
        assert shapes == [(1, QWEN_SEQ, 128)]
        assert np.array_equal(dev_out.download(np.uint16, shapes[0]), want)


@pytest.mark.runtime
def test_device_buffer_copies(rt: Runtime) -> None:
    data = np.arange(256, dtype=np.uint8)
    with rt.alloc(512) as a, rt.alloc(512) as b:
        a.fill(0)
        a.upload(data, offset=128)
        b.fill(7)
        b.copy_from(a, size=256, dst_offset=256, src_offset=128)
        got = b.download(np.uint8, (512,))
        assert (got[:256] == 7).all() and np.array_equal(got[256:], data)
        assert np.array_equal(b.view(300, 4).download(np.uint8, (4,)), data[44:48])
        with pytest.raises(VendorRuntimeError, match="outside"):
            a.upload(data, offset=300)
    with pytest.raises(VendorRuntimeError, match="after free"):
        a.download(np.uint8, (1,))


@pytest.mark.runtime
def test_io_buffers_of_an_io_alone_net(rt: Runtime) -> None:
    ins, outs = rt.io_buffers("block_cache_0")
    info = rt.net_info("block_cache_0")
    assert [b.size for b in ins] == [t.max_bytes for t in info.inputs]
    assert [b.size for b in outs] == [t.max_bytes for t in info.outputs]
    assert not any(b.owned for b in ins + outs)


# ---------------------------------------------------------------------------- weight check


@pytest.mark.runtime
def test_trace_counts_a_corrupted_coeff(fresh, tmp_path: Path) -> None:
    log = tmp_path / "vendor.log"
    rt = fresh(log_path=log)
    rt.load(MLP)
    assert rt.trace() == 0
    assert "Total 0 errors" in log.read_text()
    m = re.search(r"addr\[0x([0-9a-fA-F]+)\], size\[0x([0-9a-fA-F]+)\]", rt.last_vendor_output)
    assert m, rt.last_vendor_output
    coeff = DeviceBuffer(rt, _api.BmDeviceMem(device_addr=int(m[1], 16), size=int(m[2], 16)),
                         owned=False)
    original = coeff.download(np.uint8, (coeff.size,))
    coeff.upload(original[:16] ^ np.uint8(0xFF))
    assert rt.trace() == 1
    coeff.upload(original)
    assert rt.trace() == 0
