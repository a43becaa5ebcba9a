"""What opens a file or is written for (FORMAT.md §4, §8.2): the union of the secrets, and the
one place key material leaves Python objects for the native core."""

from __future__ import annotations

from bmcrypt.crypto.kdf import KeySource, Passphrase, UserKey
from bmcrypt.crypto.x25519 import Identity

#: A key file's key, a passphrase, or (version 2) an X25519 identity.
Secret = UserKey | Passphrase | Identity


def register_with_native(secret: Secret) -> None:
    """Hand `secret` to the native key registry (the runtime's decrypt callback reads it there).

    The one place key material leaves Python objects; `bmcrypt._native.clear_keys()` wipes it.
    """
    from bmcrypt import _native

    if isinstance(secret, Passphrase):
        _native.register_passphrase(secret._secret.decode("utf-8"))
    elif isinstance(secret, Identity):
        # The native registry learns identities with the C++ reader of version 2 (csrc/,
        # bmcrypt_register_identity_file).
        register = getattr(_native, "register_identity", None)
        if register is None:
            raise ValueError("this native core cannot register X25519 identities")
        register(secret._secret_bytes())
    elif secret.source == KeySource.RAW:
        _native.register_key(secret._k)
    else:  # a key derived from a passphrase for one file: the native side needs the passphrase
        raise ValueError("register the Passphrase itself, not a key derived from it")
