"""What each user-facing command does, end to end, as plain functions.

Each one combines the format (`bmodel`), the crypto (`protect`) and file safety (`files`) in the
order that never loses data: lock what is written → finish a crashed run's journal → check the
input's state → write a temp file (which checks the input through and through) → backup → commit
by rename. Commands that only read lock nothing. The CLI only parses arguments and renders the
results; tests and other programs call these directly.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from bmcrypt.bmodel.reader import open_mapped
from bmcrypt.crypto import DEFAULT_SLOTS, Keyring, Secret, new_file
from bmcrypt.crypto.keyarea import RecipientLike
from bmcrypt.errors import (
    AlreadyEncrypted,
    InputFileError,
    NotABmodel,
    NotEncrypted,
    UnknownNet,
)
from bmcrypt.files import (
    BackupResult,
    ModelReadback,
    atomic_write,
    can_keep_as_backup,
    cleanup_stale_temps,
    file_lock,
    keep_as_backup,
    make_backup,
    recover_journal,
    restore_backup,
)
from bmcrypt.protect.container import FileState, file_state
from bmcrypt.protect.opened import Opened, open_encrypted
from bmcrypt.protect.rekey import (
    RecipientsReport,
    RekeyReport,
    change_recipients,
    list_recipients,
    rekey_file,
)
from bmcrypt.protect.seal import SealReport, seal_bmodel, sealed_nets
from bmcrypt.protect.unseal import VerifyReport, unseal_file, unseal_to_memory

Progress = Callable[[int], None]
#: Called once with the number of bytes a long operation will process; returns its progress.
ProgressFactory = Callable[[str, int], Progress | None]


@dataclass(frozen=True)
class EncryptOutcome:
    target: Path
    report: SealReport
    backup: BackupResult | None
    other_links: int = 0  # in place: the model's other hard links, which keep the plaintext


@dataclass(frozen=True)
class DecryptOutcome:
    target: Path
    report: VerifyReport


@dataclass(frozen=True)
class StreamOutcome:
    size: int
    key_id: str


def _no_progress(_what: str, _total: int) -> None:
    return None


def _settle(model: Path, out: Path | None = None) -> None:
    """Under the lock of what is written: finish what a killed rekey left in the model (a
    journal, which takes the model's lock itself and only if there is one) and drop the temp
    files killed runs left where we are about to write. Nothing is written next to a model that
    is only read, so `-o` works from read-only media."""
    recover_journal(model)
    cleanup_stale_temps(out if out is not None else model)


def _written(model: Path, out: Path | None) -> Path:
    """The file a command writes, whose lock it takes: the model in place, else `out`.

    Readers lock nothing: in-place writers replace the model by rename (an open reader keeps the
    old file) or patch it through a journal (`rekey`, which only changes key blocks, so a reader
    racing it fails authentication rather than reading a wrong byte)."""
    return model if out is None else out


def _refuse_encrypted(path: Path) -> None:
    state = file_state(path)
    if state == FileState.BMCRYPT:
        raise AlreadyEncrypted(f"{path} is already encrypted by bmcrypt")
    if state == FileState.FOREIGN:
        raise AlreadyEncrypted(f"{path} is already encrypted (vendor layout, not by bmcrypt)",
                               hint="decrypt it with the tool that encrypted it first")


def _output_path(model: Path, output: str | os.PathLike[str] | None) -> Path | None:
    """None for in place; else the new file, which must not exist yet."""
    if output is None:
        return None
    out = Path(output)
    if out.exists() and out.resolve() == model.resolve():
        return None
    if os.path.lexists(out):  # a dangling link too: it would be written through
        raise InputFileError(f"{out} already exists; bmcrypt does not overwrite it",
                             hint="remove it or choose another output name")
    return out


def encrypt_model(model: str | os.PathLike[str],
                  secret: RecipientLike | Sequence[RecipientLike], *,
                  nets: set[str] | None = None, output: str | os.PathLike[str] | None = None,
                  backup: bool = True, backup_path: str | os.PathLike[str] | None = None,
                  progress: ProgressFactory = _no_progress, slots: int = DEFAULT_SLOTS,
                  licence_key: bytes | None = None) -> EncryptOutcome:
    """Encrypt `model` in place after a verified backup, or into a new file `output`.

    `secret`: who can open it — a key, a passphrase, an X25519 recipient or identity, or a list
    of them (FORMAT.md §8.2; `slots` reserves room for recipients added later). `licence_key`
    (a 32-byte Ed25519 public key) makes the file open only with a licence it signed (§8.5).

    Check before copying: the encrypted file is written (to a temp file) first, which checks
    the layout and every weight against its check code; only a model that passed is backed up,
    and only then does the encrypted file take the model's place. A broken model thus fails
    before a byte of backup is written. In place, `other_links` counts the model's other hard
    links: they keep the plaintext.
    """
    model = Path(model)
    out = _output_path(model, output)
    with file_lock(_written(model, out)):
        _settle(model, out)
        _refuse_encrypted(model)
        if nets is not None:
            _check_net_names(model, nets)
        made = None
        target = out or model
        before = os.stat(model)
        with open_mapped(model) as src, \
                atomic_write(target, mode_from=model, through_link=out is None) as f, \
                contextlib.ExitStack() as stack:
            # In place, the model is read back from the disk while it is sealed from the cache:
            # its file becomes its backup, checked against what the seal hashed.
            readback = (stack.enter_context(ModelReadback(model))
                        if out is None and backup and can_keep_as_backup(model, backup_path)
                        else None)
            total = src.raw.file_size - src.raw.header.binary_offset
            keys = new_file(secret, slots=slots, licence_key=licence_key)
            report = seal_bmodel(src, f, keys, nets=nets, progress=progress("encrypt", total))
            if out is None and backup:
                made = keep_as_backup(model, backup_path, progress("backup", 2 * before.st_size),
                                      sha256=report.original_sha256, readback=readback)
            _unchanged(model, before)
    links = before.st_nlink - 1 if out is None else 0
    return EncryptOutcome(target, report, made, links)


def _unchanged(model: Path, before: os.stat_result) -> None:
    """The model is still the file that was encrypted (nothing wrote it meanwhile)."""
    now = os.stat(model)
    if (now.st_ino, now.st_size, now.st_mtime_ns) != (before.st_ino, before.st_size,
                                                      before.st_mtime_ns):
        raise InputFileError(f"{model} changed while it was being encrypted; it was left as it is",
                             hint="make sure nothing else writes to it, then try again")


def _check_net_names(model: Path, nets: set[str]) -> None:
    """`--nets` must name nets of this model: a typo would leave weights in clear. Checked
    before the backup, as a usage error (the file is fine, the command line is not)."""
    with open_mapped(model) as src:
        root = src.raw.root()
        known = {root.Net(i).Name().decode() for i in range(root.NetLength())}
    if unknown := sorted(nets - known):
        raise UnknownNet(f"no net named {', '.join(map(repr, unknown))} in {model}",
                         hint=f"nets in this model: {', '.join(sorted(known))}")


def decrypt_model(model: str | os.PathLike[str], keyring: Keyring, *,
                  output: str | os.PathLike[str] | None = None,
                  backup_path: str | os.PathLike[str] | None = None,
                  progress: ProgressFactory = _no_progress) -> DecryptOutcome:
    """Write the plain form of `model` (in place, or to `output`), after authenticating all of it.

    In place, the plain model replaces the encrypted one only once every byte has
    authenticated, so the encrypted file is not at risk; `backup_path` keeps a copy anyway.
    """
    model = Path(model)
    out = _output_path(model, output)
    with file_lock(_written(model, out)):
        _settle(model, out)
        if out is None and backup_path is not None:
            make_backup(model, backup_path, progress("backup", 2 * model.stat().st_size))
        target = out or model
        with open_encrypted(model, keyring) as opened, \
                atomic_write(target, mode_from=model, through_link=out is None) as f:
            report = unseal_file(opened, f, progress("decrypt", opened.binary_size))
    return DecryptOutcome(target, report)


def decrypt_to_stream(model: str | os.PathLike[str], keyring: Keyring,
                      stream: BinaryIO) -> StreamOutcome:
    """Write the plain form of `model` to `stream` (a pipe: `decrypt -o -`).

    A pipe cannot be taken back, so the whole plain model is built in memory and authenticated
    before its first byte is written; the model file is not changed.
    """
    model = Path(model)
    with file_lock(model):
        recover_journal(model)
        if file_state(model) == FileState.PLAIN:
            raise NotEncrypted(f"{model} is a plain bmodel, there is nothing to decrypt")
        with open_encrypted(model, keyring) as opened:
            plain = unseal_to_memory(opened)
            key_id = opened.keys.key_id.hex()
    stream.write(plain)
    stream.flush()
    return StreamOutcome(len(plain), key_id)


def verify_model(model: str | os.PathLike[str], keyring: Keyring, *,
                 progress: ProgressFactory = _no_progress) -> VerifyReport:
    """Authenticate every byte of an encrypted model; write nothing, lock nothing (so it works on
    read-only media). Only a journal left by a killed `rekey` is finished first."""
    model = Path(model)
    recover_journal(model)
    if file_state(model) == FileState.PLAIN:
        raise NotEncrypted(f"{model} is a plain bmodel, there is nothing to verify")
    with open_encrypted(model, keyring) as opened:
        return unseal_file(opened, None, progress("verify", opened.binary_size))


def rekey_model(model: str | os.PathLike[str], old: Keyring, new: Secret) -> RekeyReport:
    """Rewrap an encrypted model's data key for `new`; `old` stops opening it."""
    model = Path(model)
    with file_lock(model):
        _settle(model)
        if file_state(model) == FileState.PLAIN:
            raise NotEncrypted(f"{model} is a plain bmodel; encrypt it instead")
        return rekey_file(model, old, new)


def list_model_recipients(model: str | os.PathLike[str]) -> RecipientsReport:
    """Who can open a version-2 model (its key area is public: no key needed)."""
    from bmcrypt.protect.opened import probe_path

    return list_recipients(probe_path(Path(model)).envelope)


def change_model_recipients(model: str | os.PathLike[str], keyring: Keyring, *,
                            add: Sequence[RecipientLike] = (),
                            remove: Sequence[str] = ()) -> RecipientsReport:
    """Add or remove recipients of a version-2 model in place: only E₁'s key area is rewritten
    (crash-safe, through the journal), whatever the model weighs. `keyring` must open it, and
    must still open it afterwards."""
    model = Path(model)
    with file_lock(model):
        _settle(model)
        if file_state(model) == FileState.PLAIN:
            raise NotEncrypted(f"{model} is a plain bmodel; encrypt it instead")
        return change_recipients(model, keyring, add=add, remove=remove)


@dataclass(frozen=True)
class RotateOutcome:
    target: Path
    report: SealReport
    old_recipients: tuple[str, ...]  # key ids before
    dropped: tuple[str, ...]  # key ids that no longer open the file
    backup: BackupResult | None


def rotate_data_key(model: str | os.PathLike[str], keyring: Keyring,
                    recipients: Sequence[RecipientLike], *, slots: int | None = None,
                    backup_path: str | os.PathLike[str] | None = None,
                    progress: ProgressFactory = _no_progress) -> RotateOutcome:
    """Re-encrypt `model` in place under a fresh data key, for `recipients` only.

    Revokes for real: whoever kept the old data key cannot read the new file. The plain model
    exists only in memory (a memfd, never on disk); the new file replaces the old one by rename
    once it is complete, so a failure leaves the old file as it was. The weights of the same nets
    are encrypted as before; `slots` defaults to the old key area's capacity.
    """
    from bmcrypt.protect.unseal import unseal_file

    model = Path(model)
    if not recipients:
        raise InputFileError("a new data key needs at least one recipient")
    with file_lock(model):
        _settle(model)
        if file_state(model) == FileState.PLAIN:
            raise NotEncrypted(f"{model} is a plain bmodel; encrypt it instead")
        made = None
        if backup_path is not None:
            made = make_backup(model, backup_path, progress("backup", 2 * model.stat().st_size))
        with open_encrypted(model, keyring) as opened:
            old_ids = _recipient_ids(opened)
            if slots is None:
                slots = opened.keys.area().slots if opened.keys.version >= 2 else DEFAULT_SLOTS
            nets = set(sealed_nets(opened.unpack()))
            fd = os.memfd_create("bmcrypt-rotate", os.MFD_CLOEXEC)
            with open(fd, "w+b") as plain:
                unseal_file(opened, plain, progress("decrypt", opened.binary_size))
                plain.flush()
                with open_mapped(f"/proc/self/fd/{fd}") as src, \
                        atomic_write(model, mode_from=model, through_link=True) as f:
                    total = src.raw.file_size - src.raw.header.binary_offset
                    # A file that demands a licence keeps demanding one (from the same signer).
                    keys = new_file(list(recipients), slots=slots,
                                    licence_key=opened.keys.licence_key
                                    if opened.keys.policy else None)
                    report = seal_bmodel(src, f, keys, nets=nets or None,
                                         progress=progress("encrypt", total))
                    new_ids = keys.area().key_ids
    dropped = tuple(i for i in old_ids if i not in new_ids)
    return RotateOutcome(model, report, tuple(old_ids), dropped, made)


def _recipient_ids(opened: Opened) -> list[str]:
    if opened.keys.version >= 2:
        return opened.keys.area().key_ids
    return [opened.keys.key_id.hex()]


def restore_model(model: str | os.PathLike[str], backup_path: str | os.PathLike[str] | None = None,
                  *, trust_unverified: bool = False) -> BackupResult:
    """Put the verified backup of `model` back in its place (the backup stays)."""
    return restore_backup(Path(model), backup_path, trust_unverified=trust_unverified)


__all__ = [
    "DecryptOutcome", "EncryptOutcome", "NotABmodel", "RotateOutcome", "StreamOutcome",
    "change_model_recipients", "decrypt_model", "decrypt_to_stream", "encrypt_model",
    "list_model_recipients", "rekey_model", "restore_model", "rotate_data_key", "verify_model",
]
