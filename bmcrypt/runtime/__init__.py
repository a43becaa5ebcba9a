"""Python binding of the Sophgo vendor runtime (libbmrt + libbmlib) through ctypes.

No cryptography lives here: this package only finds the runtime, loads bmodels (plain, from
memory, or through a decrypt callback / library), describes and runs their nets, checks the
device weights with ``bmrt_trace``, and manages device memory.

    from bmcrypt.runtime import Runtime
    with Runtime() as rt:
        rt.load("model.bmodel")
        outputs = rt.run("net", {"x": x})
"""

from bmcrypt.runtime.device import Runtime
from bmcrypt.runtime.devmem import DeviceBuffer
from bmcrypt.runtime.isolate import LoadReport, check_load, run_isolated
from bmcrypt.runtime.lifecycle import close_all, exit_now
from bmcrypt.runtime.locate import find_lib_dir, find_model_tool, simulator_cache_dir
from bmcrypt.runtime.nets import DType, NetInfo, TensorInfo, bf16_from_f32, f32_from_bf16
from bmcrypt.runtime.sibling import SiblingRuntime

__all__ = [
    "DType",
    "DeviceBuffer",
    "LoadReport",
    "NetInfo",
    "Runtime",
    "SiblingRuntime",
    "TensorInfo",
    "bf16_from_f32",
    "check_load",
    "close_all",
    "exit_now",
    "f32_from_bf16",
    "find_lib_dir",
    "find_model_tool",
    "run_isolated",
    "simulator_cache_dir",
]
