"""The recipes a Python user calls, re-exported by ``import bmcrypt`` (docs/python.md).

    import bmcrypt
    key = bmcrypt.generate_key_file("model.key")          # or bmcrypt.load_key_file(...)
    bmcrypt.encrypt_model("m.bmodel", key)                 # in place, after a verified backup
    bmcrypt.verify_model("m.bmodel", key)                  # every byte authenticated
    report = bmcrypt.inspect_model("m.bmodel", key)        # what it holds (key optional)
    with bmcrypt.Runtime() as rt:                          # the vendor runtime
        bmcrypt.load_model(rt, "m.bmodel", key)            # decrypted only in memory

Failures raise the classes of ``bmcrypt.errors`` (also re-exported: ``bmcrypt.WrongKey`` …).
Everything else of the package is reachable through its subpackages; these names are the
stable surface.
"""

from __future__ import annotations

import os

from bmcrypt.crypto import Secret
from bmcrypt.inspect import FileReport, KeyChoice, inspect_file


def inspect_model(path: str | os.PathLike[str], key: Secret | None = None) -> FileReport:
    """What a model holds: chip, nets, IO, weights, memory, byte layout, encryption.

    No key is needed; with `key`, an encrypted model is opened (WrongKey if it does not open
    it) and reported in full. ``bmcrypt.inspect.to_json(report)`` gives the JSON of
    ``bmcrypt inspect --json``.
    """
    choice = None if key is None else KeyChoice(lambda: key, explicit=True)
    return inspect_file(path, choice)
