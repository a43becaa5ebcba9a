"""Every error bmcrypt reports on purpose.

Each class names what went wrong and carries the exit code the CLI uses for it, so that scripts
can tell a wrong key from a tampered file without parsing text. Messages are lower-case, one line,
and never contain key material; ``hint`` says what to do next.

    exit 1  BmcryptError (anything else we raise on purpose), and every OS error we did not
            foresee (disk full, I/O error, …): "bmcrypt: error: <the OS's reason> (<path>)"
    exit 2  UsageError:    UnknownNet, SlotsFull (and Typer's own usage errors)
    exit 3  FormatError:   NotABmodel, Truncated, Corrupt, UnsupportedVersion
    exit 4  WrongKey
    exit 5  Tampered
    exit 6  StateError:    AlreadyEncrypted, NotEncrypted, ForeignEncrypted
    exit 7  KeyProblem:    KeyFileError, NoKey
    exit 8  FileSafetyError: BackupConflict, Locked, InputFileError (NotRegularFile),
                             SymlinkRefused
    exit 9  VendorRuntimeError
    exit 10..15  LicenceError (FORMAT.md §8.5), one code per reason: 10 NoLicence,
            11 CorruptLicence, 12 BadLicenceSignature, 13 LicenceForAnotherFile,
            14 LicenceExpired, 15 LicenceForAnotherDevice
    exit 1  ChatError:     NotAnLlm, UnsupportedGeneration, PromptTooLong, TokenizerError
    exit 129/130/143  interrupted by SIGHUP / SIGINT / SIGTERM (128 + the signal's number), after
            the same cleanup a failure gets
"""

from __future__ import annotations

import os
import stat


class BmcryptError(Exception):
    """Base class: a message for the user, an optional hint, an exit code."""

    exit_code = 1
    default_hint: str | None = None

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return self.message


class UsageError(BmcryptError):
    """The command line asks for something impossible; nothing was changed."""

    exit_code = 2
    default_hint = "see `bmcrypt COMMAND --help`"


class UnknownNet(UsageError):
    """`--nets` names a net the model does not have."""


class SlotsFull(UsageError):
    """A recipient is added to a key area with no free slot (FORMAT.md §8.2)."""


# ---------------------------------------------------------------- the file is not what we need


class FormatError(BmcryptError):
    """The input is not a well-formed bmodel (or bmcrypt envelope)."""

    exit_code = 3


class NotABmodel(FormatError):
    default_hint = "bmodel files start with the magic ee aa 55 ff; check the path"


class Truncated(FormatError):
    default_hint = "the file is shorter than its header says; copy it again or restore the backup"


class Corrupt(FormatError):
    default_hint = "the file is damaged; restore it from its backup or recompile the model"


class UnsupportedVersion(FormatError):
    default_hint = "this file was written by a newer bmcrypt; upgrade bmcrypt to read it"


# ---------------------------------------------------------------- keys and authentication


class WrongKey(BmcryptError):
    """The key given does not open this file (its key id or key check differs)."""

    exit_code = 4
    default_hint = "use the key the file was encrypted with (`bmcrypt inspect` shows its key id)"


class Tampered(BmcryptError):
    """Authentication failed with the right key: the bytes were changed after encryption.

    Deliberately unspecific about *how* they were changed.
    """

    exit_code = 5
    default_hint = "do not use this file; restore it from a trusted copy"


# ---------------------------------------------------------------- the file is in the wrong state


class StateError(BmcryptError):
    exit_code = 6


class AlreadyEncrypted(StateError):
    default_hint = "nothing to do; `bmcrypt verify` checks it, `bmcrypt decrypt` undoes it"


class NotEncrypted(StateError):
    default_hint = "this is a plain bmodel; `bmcrypt encrypt` protects it"


class ForeignEncrypted(StateError):
    default_hint = (
        "it was encrypted by another tool (vendor layout, unknown cipher); "
        "decrypt it with that tool's library first"
    )


# ---------------------------------------------------------------- keys on disk


class KeyProblem(BmcryptError):
    exit_code = 7


class KeyFileError(KeyProblem):
    default_hint = "create a key with `bmcrypt keygen -o KEYFILE`"


class NoKey(KeyProblem):
    default_hint = "pass --key KEYFILE, set BMCRYPT_KEY_FILE, or use --passphrase"


# ---------------------------------------------------------------- files and backups


class FileSafetyError(BmcryptError):
    exit_code = 8


class InputFileError(FileSafetyError):
    """A path that cannot be used: missing, a directory, unreadable."""

    default_hint = "check the path"


class NotRegularFile(InputFileError):
    """A FIFO, socket, device or directory where a file was wanted (refused without opening it,
    so it never blocks)."""

    default_hint = "give the path of a regular file"

    @classmethod
    def of(cls, path: str | os.PathLike[str], mode: int) -> NotRegularFile:
        """The one message for every such refusal: ``X is a FIFO, not a regular file``."""
        kind = _KINDS.get(stat.S_IFMT(mode), "a special file")
        return cls(f"{os.fspath(path)} is {kind}, not a regular file")


_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a directory",
    stat.S_IFLNK: "a symbolic link",
}


class SymlinkRefused(FileSafetyError):
    """A symbolic link at a name bmcrypt derives (backup, manifest, lock, journal, temp file)."""

    default_hint = "remove the link; bmcrypt never follows links at the names it derives"


class BackupConflict(FileSafetyError):
    default_hint = "move the existing backup away, or pass --backup PATH"


class Locked(FileSafetyError):
    default_hint = "another bmcrypt is working on this file; wait for it to finish"


# ---------------------------------------------------------------- the vendor runtime


class VendorRuntimeError(BmcryptError):
    exit_code = 9
    # What an installed user can do: nothing here may name a script of the source tree.
    default_hint = ("pass --runtime DIR or set BMCRYPT_RUNTIME_DIR to the directory with "
                    "libbmrt.so and libbmlib.so: /opt/sophon/libsophon-current/lib on a device "
                    "or a host with libsophon, or the lib/ of the tpu_mlir 1.30.2 simulator")


# ---------------------------------------------------------------- licences (FORMAT.md §8.5)


class LicenceError(BmcryptError):
    """The file demands a licence and no licence given lets it open. Each reason has its own
    class and exit code, so that a script can tell an expired licence from a forged one."""

    exit_code = 10
    default_hint = ("pass the model's licence with --license FILE or $BMCRYPT_LICENSE_FILE; "
                    "the model's vendor issues it")


class NoLicence(LicenceError):
    """The file demands a licence and none was given."""

    exit_code = 10


class CorruptLicence(LicenceError):
    """A licence file that is not a well-formed licence."""

    exit_code = 11
    default_hint = "the licence file is damaged or is not a licence; ask the vendor for it again"


class BadLicenceSignature(LicenceError):
    """Signed by another key than the file names, or the signature does not verify."""

    exit_code = 12
    default_hint = ("this licence was not issued for this model by its vendor, or it was "
                    "altered; ask the vendor for a new one")


class LicenceForAnotherFile(LicenceError):
    """A genuine licence, for another model file (another file id)."""

    exit_code = 13
    default_hint = ("use the licence issued for this model: `bmcrypt license show LICENSE` "
                    "prints the file id it is for, `bmcrypt inspect MODEL` the model's")


class LicenceExpired(LicenceError):
    """A genuine licence for this file, past its not-after time (by this host's clock)."""

    exit_code = 14
    default_hint = "ask the model's vendor for a renewed licence"


class LicenceForAnotherDevice(LicenceError):
    """A genuine licence for this file, bound to devices; this device is not one of them, or
    its serial number is unknown here."""

    exit_code = 15
    default_hint = "ask the model's vendor for a licence that lists this device's serial number"


# ---------------------------------------------------------------- signals


class Interrupted(BaseException):
    """SIGINT, SIGTERM or SIGHUP arrived: the run unwinds like any failure (temp files deleted,
    locks released, the model as it was) and exits 128 + the signal's number.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` swallows it.
    """

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(f"interrupted ({self.name})")


# ---------------------------------------------------------------- the chat runtime


class ChatError(BmcryptError):
    """Base class of everything the chat pipeline refuses on purpose (exit code 1)."""

    exit_code = 1


class NotAnLlm(ChatError):
    """The model lacks the nets (or shapes) of the tpu-mlir Qwen2-style LLM layout."""

    default_hint = ("bmcrypt chat runs models converted by tpu-mlir's llm_convert.py "
                    "(nets embedding, embedding_cache, block_N, block_cache_N, lm_head); "
                    "`bmcrypt inspect MODEL` lists a file's nets")


class UnsupportedGeneration(ChatError):
    """The generation mode asked for is impossible with this build of the model."""

    default_hint = "use --generation-mode greedy, or a model compiled with sampling heads"


class PromptTooLong(ChatError):
    """The prompt leaves no room for an answer within the model's sequence length."""

    default_hint = ("shorten the prompt (or the system prompt), "
                    "or use a model with a longer sequence")


class TokenizerError(ChatError):
    """The tokenizer folder is missing a file, or a file cannot be used."""

    default_hint = ("--tokenizer takes the model's Hugging Face folder: tokenizer.json, "
                    "tokenizer_config.json, and chat_template.jinja (or a chat_template in "
                    "tokenizer_config.json)")
