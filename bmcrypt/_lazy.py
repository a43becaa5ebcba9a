"""What is imported when: start-up is most of what a small command costs (issue 17).

- `lazy_names`: names a package imports on first use (PEP 562), so that importing it costs
  nothing. `bmcrypt.bmodel`, `bmcrypt.crypto` and `bmcrypt.files` export many names, but a
  command such as `bmcrypt --version` or `inspect` needs few of them: each name is imported
  from its home module the first time it is asked for, then kept in the package's namespace.
- `avoid_numpy` / `load_flatbuffers_runtime`: the flatbuffers runtime without numpy in the CLI.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, namespace: dict[str, Any], home: Mapping[str, tuple[str, ...]],
               aliases: Mapping[str, str] | None = None
               ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The `__getattr__` and `__dir__` of `package` (whose globals are `namespace`): a name of
    `home[module]` comes from `package.module`; an alias is another name for one of them."""
    where = {name: module for module, names in home.items() for name in names}
    aliases = dict(aliases or {})

    def __getattr__(name: str) -> Any:
        real = aliases.get(name, name)
        module = where.get(real)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), real)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return list(namespace.get("__all__", ()))

    return __getattr__, __dir__


_numpy_unwanted = False


def avoid_numpy() -> None:
    """Load the flatbuffers runtime without its numpy support in this process (the CLI's
    choice; a library user's process is left as it is). See `load_flatbuffers_runtime`."""
    global _numpy_unwanted
    _numpy_unwanted = True


def load_flatbuffers_runtime() -> None:
    """Import the flatbuffers runtime (the generated package ``bmodel._fbs`` does, first).

    The runtime imports numpy whenever it is installed (``flatbuffers.compat.import_numpy``, at
    import time), for features bmcrypt never uses: the generated classes are made with
    ``np = None`` (scripts/gen-schema.sh) and read vectors as lists. In a CLI process numpy
    costs ~50 ms to import, and OpenBLAS's idle threads spun for ~0.1 s of CPU during a 1 GiB
    encrypt (perf, issue 17). After `avoid_numpy`, numpy's *discovery* is hidden during this
    import only, and only while numpy is not loaded yet: numpy itself still imports later.
    """
    if not _numpy_unwanted or "flatbuffers" in sys.modules or "numpy" in sys.modules:
        importlib.import_module("flatbuffers")
        return
    finder = importlib.machinery.PathFinder
    real = finder.__dict__["find_spec"]

    def find_spec(name: str, path: Any = None, target: Any = None) -> Any:
        return None if name == "numpy" else real.__get__(None, finder)(name, path, target)

    finder.find_spec = staticmethod(find_spec)  # type: ignore[method-assign,assignment]
    try:
        importlib.import_module("flatbuffers")
    finally:
        finder.find_spec = real  # type: ignore[method-assign]
