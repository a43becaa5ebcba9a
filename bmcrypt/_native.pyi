"""bmcrypt._native: the private C++ extension (csrc/python/). Use the bmcrypt package instead.

Failures raise the classes of `bmcrypt.errors` (WrongKey, Tampered, Truncated, Corrupt,
UnsupportedVersion, NoKey, KeyFileError, NotABmodel, NotEncrypted, ForeignEncrypted,
InputFileError, VendorRuntimeError); a bad argument raises ValueError. Crypto runs without the GIL.

Buffers: any C-contiguous object with the buffer protocol (bytes, bytearray, memoryview, mmap,
numpy arrays). Output buffers must be writable.
"""

from os import PathLike

from typing_extensions import Buffer

_Path = str | bytes | PathLike[str] | PathLike[bytes]

DEFAULT_SEG_LOG2: int

def cryptopp_version() -> str:
    """Crypto++ version the core was built with, e.g. "8.7.0"."""

def version() -> str:
    """Version of the native core (the project version)."""

def error_name(code: int) -> str:
    """Stable name of a native error code (the C API's enum bmcrypt_status), e.g. "wrong_key"."""

# ---------------------------------------------------------------- envelopes

class EnvelopeHeader:
    """The checked header of an envelope (FORMAT.md §3, version 2: §8.1); reading it needs no
    key. Version 1 fields (key_block, key_id) are zero in version 2, version 2 fields (dk_check,
    policy, licence_key, key_area) are zero or empty in version 1."""

    @property
    def kind(self) -> int: ...
    @property
    def seg_log2(self) -> int: ...
    @property
    def plaintext_len(self) -> int: ...
    @property
    def segment_count(self) -> int: ...
    @property
    def file_id(self) -> bytes: ...
    @property
    def region_salt(self) -> bytes: ...
    @property
    def key_block(self) -> bytes: ...
    @property
    def key_id(self) -> bytes: ...
    @property
    def version(self) -> int: ...
    @property
    def dk_check(self) -> bytes: ...
    @property
    def policy(self) -> int: ...
    @property
    def licence_key(self) -> bytes: ...
    @property
    def key_area(self) -> bytes:
        """Version 2 header envelope (kind 1): its key area (FORMAT.md §8.2), checked."""

class FileKeys:
    """What every envelope of one file shares: file_id, the data key DK, the key block."""

    @staticmethod
    def create(key: bytes | None = None, passphrase: str | None = None) -> FileKeys:
        """A new file: random file_id and DK, wrapped under `key` (32 bytes), under `passphrase`
        (fresh scrypt salt, log2N=15 r=8 p=1), or else under the first registered key."""
    @staticmethod
    def from_parts(file_id: bytes, key_block: bytes, dk: bytes) -> FileKeys:
        """FileKeys of an existing file (16-byte file_id, 104-byte key block, 32-byte DK). An
        empty key block means a version 2 file: its envelopes carry DK's dk_check, and the
        streaming calls take their 104-byte public header."""
    @property
    def file_id(self) -> bytes: ...
    @property
    def key_block(self) -> bytes: ...
    @property
    def key_id(self) -> bytes: ...
    def seal(self, data: Buffer, kind: int = 0, seg_log2: int = 20) -> bytes:
        """The envelope of `data` (kind 0 generic, 1 header tail, 2 FlatBuffer, 3 weights)."""
    def seal_into(self, data: Buffer, out: Buffer, kind: int = 0, seg_log2: int = 20) -> int:
        """Writes the envelope into `out` (at least `envelope_size(len(data))` bytes); returns
        its length."""
    def open(self, envelope: Buffer) -> bytes:
        """The plaintext of an envelope of this file, without the key registry (WrongKey if the
        envelope belongs to another file)."""
    def open_into(self, envelope: Buffer, out: Buffer) -> int:
        """Like `open`, decrypting straight into `out` (at least plaintext_len bytes); returns
        the plaintext length. On an authentication failure `out[:plaintext_len]` is zeroed."""
    def seal_segments(self, public_header: Buffer, first: int, data: Buffer, out: Buffer) -> int:
        """Streaming: seals the run of segments from number `first` (whole segments, or the
        rest of the envelope) of the envelope whose 48-byte public header is given, into `out`
        (16 bytes more per segment); returns the bytes written."""
    def open_segments(self, public_header: Buffer, first: int, records: Buffer,
                      out: Buffer) -> int:
        """Streaming: opens a run of segment records from number `first` into `out`; returns
        the plaintext length (Tampered, with `out` wiped, if one fails)."""

def envelope_size(plaintext_len: int, seg_log2: int = 20) -> int:
    """The exact length of the envelope of a plaintext of this length."""

def parse_header(envelope: Buffer) -> EnvelopeHeader:
    """The header of a whole envelope, checked against every limit of FORMAT.md §3.1."""

def open(envelope: Buffer) -> bytes:
    """The whole plaintext of an envelope (kind 2: FlatBuffer and manifest), with the registered
    keys. Nothing is returned unless every segment authenticated."""

def open_into(envelope: Buffer, out: Buffer) -> int:
    """Decrypts into `out` (at least plaintext_len bytes); returns the plaintext length. On
    failure `out[:plaintext_len]` is zeroed."""

def decrypt_callback_address() -> int:
    """Address of the C function `uint8_t* decrypt(const uint8_t*, uint64_t, uint64_t*)` that
    `bmrt_load_bmodel_with_decrypt` takes; it uses this module's key registry (and, when nothing
    is registered, BMCRYPT_KEY_FILE or else BMCRYPT_PASSPHRASE). Its results come from malloc."""

def encrypt_callback_address() -> int:
    """Address of the C `encrypt` of model_tool's -lib contract (kind-0 envelopes)."""

# ---------------------------------------------------------------- keys

def register_key(key: Buffer) -> None:
    """Registers a raw 32-byte user key (key source 1)."""

def register_key_file(path: _Path) -> None:
    """Registers the key of a key file (docs/keys.md) or an identity file (FORMAT.md §8.3: the
    file's length and magic say which); KeyFileError if group or others may access it or it is
    malformed."""

def register_identity(secret: Buffer) -> None:
    """Registers an X25519 identity (recipient type 3) by its 32-byte secret."""

def register_identity_file(path: _Path) -> None:
    """Registers an identity file (or a key file), as `register_key_file`."""

def register_passphrase(passphrase: str) -> None:
    """Registers a passphrase (UTF-8); scrypt runs lazily, once per file salt."""

def clear_keys() -> None:
    """Forgets (and wipes) every registered key and cached data key."""

def register_licence(licence: Buffer, source: str) -> None:
    """Registers a licence's bytes (FORMAT.md §8.5); CorruptLicence if malformed. `source`
    names it in messages."""

def set_device_sn(sn: bytes | None) -> None:
    """The device's serial number for device-bound licences (None: unknown)."""

def require_licence(file_id: Buffer, licence_key: Buffer, now: int) -> None:
    """The native verdict of FORMAT.md §8.5 on the registered licences at Unix time `now`:
    returns, or raises the LicenceError the C reader raises at E₁."""

def clear_licences() -> None:
    """Forgets every registered licence and the serial number (the environment is not read
    again: the package passes licences explicitly)."""

def set_threads(n: int) -> None:
    """Upper bound on threads used for large envelopes; 0 means all cores."""

def max_threads() -> int:
    """Threads a large envelope is processed with."""

# ---------------------------------------------------------------- whole files

class VerifyReport:
    """What `verify_file` checked."""

    @property
    def typed(self) -> bool:
        """bmcrypt's typed envelopes (False: written by model_tool with the -lib plugin)."""
    @property
    def clear_covered(self) -> bool:
        """The clear-region digest of the manifest was checked."""
    @property
    def clear_bytes(self) -> int: ...
    @property
    def weight_envelopes(self) -> int: ...
    @property
    def weight_bytes(self) -> int: ...
    @property
    def nets(self) -> int: ...
    @property
    def key_id(self) -> bytes: ...

def verify_file(path: _Path) -> VerifyReport:
    """Verifies a whole encrypted bmodel (FORMAT.md §6) with the registered keys."""

def load_bmodel(p_bmrt: int, path: _Path) -> None:
    """Verifies the file like `verify_file`, then loads it into the runtime handle `p_bmrt` (from
    bmrt_create) with bmrt_load_bmodel_with_decrypt and the decrypt callback. libbmrt.so must be
    loaded in the process already (or be on the library path). VendorRuntimeError if the runtime
    is missing or refuses the file."""
