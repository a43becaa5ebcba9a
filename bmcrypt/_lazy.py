"""Names a package imports on first use (PEP 562), so that importing it costs nothing.

`bmcrypt.bmodel`, `bmcrypt.crypto` and `bmcrypt.files` export many names, but a command such as
`bmcrypt --version` or `inspect` needs few of them (issue 17, start-up): each name is imported
from its home module the first time it is asked for, then kept in the package's namespace.
"""

from __future__ import annotations

import importlib
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
