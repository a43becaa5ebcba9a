"""Whether a file that demands a licence may open (FORMAT.md §8.5), and where a reader finds the
licences and the device's serial number: on the keyring it opens the file with.

The checks, in order, each with its own error: the licence is well-formed (parsing,
`CorruptLicence`); signed by the key the file names, with a valid signature
(`BadLicenceSignature`); for this file id (`LicenceForAnotherFile`); not past its not-after
time (`LicenceExpired`); if it lists serial numbers, this device's is one
(`LicenceForAnotherDevice`).
Several licences may be given; the file opens when one passes, and otherwise the error is that of
the licence that came furthest (the first given, on a tie). None at all: `NoLicence`.

All of this is policy enforced by bmcrypt's code, not cryptography against whoever holds the
key (docs/THREATS.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from bmcrypt.errors import (
    BadLicenceSignature,
    LicenceError,
    LicenceExpired,
    LicenceForAnotherDevice,
    LicenceForAnotherFile,
    NoLicence,
)
from bmcrypt.licence.licence_file import Licence
from bmcrypt.licence.signing_key import encode_public_key

#: Policy bit 0 of E₁'s public header: a licence is required.
POLICY_LICENCE = 1

#: The device's serial number: the bytes bm_get_sn wrote, None when unknown, or a function that
#: finds out when first needed (opening a device costs; most licences list no serial number).
DeviceSn = bytes | None | Callable[[], bytes | None]

NO_DEVICE_HINT = ("this licence is bound to devices, and this command runs on none: load the "
                  "model on its device (`bmcrypt run`, `bmcrypt chat`, the loaders, the C API), "
                  "or ask the vendor for a licence without serial numbers")
SIMULATOR_HINT = ("this licence is bound to devices, and this device reports no serial number "
                  "(the simulator never does: bm_get_sn returns BM_NOT_SUPPORTED)")


class LicenceSet:
    """The licences a reader may open licence-bound files with, and the device serial number."""

    def __init__(self, licences: Iterable[Licence] = (), device_sn: DeviceSn = None, *,
                 on_device: bool = False) -> None:
        self.licences: list[Licence] = list(licences)
        self._device_sn = device_sn
        #: whether the serial number was asked of a device (then None means the device has none)
        self.on_device = on_device

    def __bool__(self) -> bool:
        return bool(self.licences)

    def __repr__(self) -> str:
        return f"LicenceSet({len(self.licences)} licences, on_device={self.on_device})"

    @property
    def binds_devices(self) -> bool:
        """Whether any licence lists serial numbers (only then is the serial number read)."""
        return any(lic.serials for lic in self.licences)

    @property
    def has_sn_source(self) -> bool:
        """Whether a serial number, or a way to read one, was given."""
        return self._device_sn is not None or self.on_device

    def device_sn(self) -> bytes | None:
        """The device's serial number, read once when first asked for."""
        if callable(self._device_sn):
            self._device_sn = self._device_sn()
        return self._device_sn

    def set_device_sn(self, sn: DeviceSn, *, on_device: bool = True) -> None:
        self._device_sn = sn
        self.on_device = on_device

    def require(self, file_id: bytes, licence_key: bytes, now: float | None = None) -> Licence:
        """The licence that lets the file with this file id and licence key open at `now`
        (default: the host's clock); else the LicenceError of the one that came furthest."""
        now = time.time() if now is None else now
        best: tuple[int, LicenceError] | None = None
        for lic in self.licences:
            stage, error = _judge(lic, file_id, licence_key, now, self)
            if error is None:
                return lic
            if best is None or stage > best[0]:
                best = (stage, error)
        if best is None:
            raise NoLicence(f"this model requires a licence signed by "
                            f"{encode_public_key(licence_key)}, and none was given")
        raise best[1]


def _judge(lic: Licence, file_id: bytes, licence_key: bytes, now: float,
           owner: LicenceSet) -> tuple[int, LicenceError | None]:
    """How far `lic` gets through the checks (1..4), and its error; (5, None) when it passes."""
    if lic.signer != licence_key:
        return 1, BadLicenceSignature(
            f"licence {lic.source} is signed by {encode_public_key(lic.signer)}; this model "
            f"requires one signed by {encode_public_key(licence_key)}")
    if not lic.signature_valid():
        return 1, BadLicenceSignature(f"the signature of licence {lic.source} does not verify "
                                      "(the licence was altered)")
    if lic.file_id != file_id:
        return 2, LicenceForAnotherFile(f"licence {lic.source} is for file {lic.file_id.hex()}, "
                                        f"this model is file {file_id.hex()}")
    if now > lic.not_after:
        return 3, LicenceExpired(f"licence {lic.source} expired at {lic.expires}")
    if lic.serials:
        sn = owner.device_sn()
        if sn is None or sn not in lic.serials:
            return 4, _other_device(lic, sn, owner.on_device)
    return 5, None


def _other_device(lic: Licence, sn: bytes | None, on_device: bool) -> LicenceForAnotherDevice:
    listed = ", ".join(lic.serial_strings())
    if sn is None:
        return LicenceForAnotherDevice(
            f"licence {lic.source} is for the devices {listed}, and no device serial number is "
            "known here", hint=SIMULATOR_HINT if on_device else NO_DEVICE_HINT)
    shown = sn.decode("utf-8", "backslashreplace")
    return LicenceForAnotherDevice(
        f"licence {lic.source} is for the devices {listed}, not for this one ({shown})")


# ---------------------------------------------------------------- the seam with the readers


class _LicensedHeader(Protocol):
    file_id: bytes
    policy: int
    licence_key: bytes


class KeysWithLicences(list):  # type: ignore[type-arg]
    """A keyring (a list of secrets, usable wherever a Keyring is) that also carries licences
    and the device's serial number, for files that demand a licence."""

    def __init__(self, secrets: Iterable[Any], licences: LicenceSet) -> None:
        super().__init__(secrets)
        self.licences = licences

    def __repr__(self) -> str:  # never the secrets' own text (they hide it anyway)
        return f"KeysWithLicences({len(self)} keys, {self.licences!r})"


def with_licences(keyring: Any, licences: LicenceSet) -> Any:
    """`keyring` (one secret, several, or None) with `licences` attached."""
    if keyring is None:
        return None
    if isinstance(keyring, (list, tuple)) or (
            hasattr(keyring, "__iter__") and not isinstance(keyring, (bytes, str))):
        return KeysWithLicences(keyring, licences)
    return KeysWithLicences([keyring], licences)  # one secret


def licences_of(keyring: Any) -> LicenceSet:
    """The licences attached to `keyring` (`with_licences`), and any `Licence` among its items;
    an empty set when there are none."""
    found = getattr(keyring, "licences", None)
    attached = found if isinstance(found, LicenceSet) else LicenceSet()
    if isinstance(keyring, (list, tuple)):
        loose = [item for item in keyring if isinstance(item, Licence)]
        if loose:
            return LicenceSet([*attached.licences, *loose], attached.device_sn,
                              on_device=attached.on_device)
    return attached


def require_licence(*, header: _LicensedHeader, keyring: Any, now: float | None = None) -> None:
    """The reader's call when it opens E₁: returns if the file demands no licence or one of the
    keyring's licences lets it open; raises the LicenceError of §8.5 otherwise.

    Call it once E₁'s key area has given DK and before any segment of E₁ is decrypted
    (FORMAT.md §8.5).
    """
    if not header.policy & POLICY_LICENCE:
        return
    licences_of(keyring).require(bytes(header.file_id), bytes(header.licence_key), now)
