"""Device and host memory figures, computed exactly as ``model_tool --info`` prints them.

The formula was pinned down by experiment against model_tool of tpu_mlir 1.30.2: synthetic
files varying one field at a time (tests/test_bmodel_writer.py re-checks several of them
against the tool). It reproduces the tool's quirks on purpose, so that bmcrypt and the vendor
tool never disagree about the same file:

* Every stage of a net is accounted as if it were stage 0 (the tool reads parameter[0] once
  per stage): a net with k stages counts stage 0's instructions and cpu memory k times, and
  the weights and ctx_size of stages >= 1 are never looked at.
* weight   = sum of stage-0 ``coeff_mem.binary_coeff.size``, once per distinct ``check_code``
  (different sizes with equal check codes count once; the first one seen wins).
* instruct = per stage (see above), per subnet of stage 0 with ``subnet_mode == 0``:
    - dynamic subnet: ``ir_len * 4``;
    - static subnet:  cmd = sum over its ``cmd_group`` of ``binary_bdc.size + binary_gdma.size``
      (BM1684: ``(bdc_num + gdma_num) * 128``; BM1682: ``* 256``);
      without ``core_commands`` that is ``cmd``; with a ``core_commands`` vector (even empty)
      it is, per core, ``cmd + sum(cdma_commands sizes)`` (+ sdma and hau sizes on BM1690*).
      The cores' own ``gdma_tiu_commands`` are not counted.
  CPU subnets (mode 1) and other modes add nothing.
* runtime  = neuron + middle.
    neuron: each net's "max ctx" is stage 0's ``ctx_size``. Nets with more than one subnet
    are "multi-subnet"; the tool adds a multi-subnet net's ctx to a running figure that it
    resets at every net, so only the *last* net can contribute that way. Result:
    ``(ctx of the last net if it is multi-subnet else 0) + max(ctx of single-subnet nets)``.
    middle (BM1684 only): the largest stage-0 input/output buffer, ``prod(shape[0]) * 4``
    (``* 1`` for int8/uint8).
* host weight  = sum of ``const_data.size`` of the ``cpu_const`` of ``cpu_param[0]`` of every
  CPU subnet of stage 0, once per distinct ``check_code``.
* host runtime = per stage (see above), stage 0's ``cpu_mem_size * 4``.
* total = weight + instruct + runtime (host: weight + runtime).

Where model_tool would crash (missing check_code, missing cmd_group, BM1690 without
core_commands, ...) we count the missing piece as empty.
"""

from __future__ import annotations

from typing import Any

from bmcrypt.bmodel.model import DeviceMem, HostMem

_FIXED_CMD_SIZE = {"BM1682": 256, "BM1684": 128}  # bytes per command on the old chips
_SDMA_HAU_CHIPS = ("BM1690", "BM1690E")
_U64 = (1 << 64) - 1


def _cmd_bytes(groups: list[dict[str, Any]] | None, chip: str) -> int:
    fixed = _FIXED_CMD_SIZE.get(chip)
    total = 0
    for g in groups or ():
        if fixed is not None:
            total += (g["bdc_num"] + g["gdma_num"]) * fixed
        else:
            total += _size(g["binary_bdc"]) + _size(g["binary_gdma"])
    return total


def _size(binary: tuple[int, int] | None) -> int:
    return binary[1] if binary is not None else 0


def _subnet_instruct(subnet: dict[str, Any], chip: str) -> int:
    if subnet["subnet_mode"] != 0:
        return 0
    if subnet["is_dynamic"]:
        return int(subnet["ir_len"]) * 4
    cmd = _cmd_bytes(subnet["cmd_group"], chip)
    cores = subnet["core_commands"]
    if cores is None:
        return cmd
    total = 0
    for core in cores:
        total += cmd + sum(_size(b) for b in core["cdma_commands"] or ())
        if chip in _SDMA_HAU_CHIPS:
            total += sum(_size(b) for b in core["sdma_commands"] or ())
            total += sum(_size(b) for b in core["hau_commands"] or ())
    return total


def _tensor_buffer(tensor: dict[str, Any]) -> int:
    n = 1 if tensor["data_type"] in (2, 3) else 4
    shapes = tensor["shape"]
    for d in (shapes[0]["dim"] or ()) if shapes else ():
        n *= d
    return n


def _host_weight(stage0: dict[str, Any], seen: set[bytes]) -> int:
    total = 0
    for subnet in stage0["sub_net"] or ():
        if subnet["subnet_mode"] != 1 or not subnet["cpu_param"]:
            continue
        for const in subnet["cpu_param"][0]["cpu_const"] or ():
            key = const["check_code"] or b""
            if key not in seen:
                seen.add(key)
                total += _size(const["const_data"])
    return total


def memory_info(root: dict[str, Any]) -> tuple[DeviceMem, HostMem]:
    """Device and host memory of a decoded Model table (see the module docstring)."""
    chip = root["chip"].decode("utf-8", "replace")
    weight = instruct = middle = host_weight = host_runtime = 0
    coeff_keys: set[bytes] = set()
    const_keys: set[bytes] = set()
    single_max = 0
    last_multi = 0
    for net in root["net"]:
        stages = net["parameter"] or []
        if not stages:
            continue
        stage0 = stages[0]
        subnets = stage0["sub_net"] or []
        coeff = stage0["coeff_mem"]
        if coeff is not None:
            key = coeff["check_code"] or b""
            if key not in coeff_keys:
                coeff_keys.add(key)
                weight += _size(coeff["binary_coeff"])
        per_stage = sum(_subnet_instruct(s, chip) for s in subnets)
        instruct += per_stage * len(stages)
        host_weight += _host_weight(stage0, const_keys)
        host_runtime += stage0["cpu_mem_size"] * 4 * len(stages)
        if len(subnets) > 1:
            last_multi = stage0["ctx_size"]
        else:
            last_multi = 0
            single_max = max(single_max, stage0["ctx_size"])
        if chip == "BM1684":
            for t in (stage0["input_tensor"] or []) + (stage0["output_tensor"] or []):
                middle = max(middle, _tensor_buffer(t))
    # The tool sums in uint64; wrap the same way so absurd values still print identically.
    weight, instruct, host_weight, host_runtime = (
        v & _U64 for v in (weight, instruct, host_weight, host_runtime))
    runtime = (last_multi + single_max + middle) & _U64
    device = DeviceMem((weight + instruct + runtime) & _U64, weight, instruct, runtime)
    return device, HostMem((host_weight + host_runtime) & _U64, host_weight, host_runtime)
