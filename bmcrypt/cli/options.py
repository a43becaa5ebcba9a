"""Options several commands share, declared once, and the one place a command gets its key.

Commands annotate their parameters with these aliases (`key: KeyRing = None`), so `--key` reads
the same everywhere. Library modules load only when a command runs: start-up stays cheap.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.core

from bmcrypt.cli import mode

if TYPE_CHECKING:
    from bmcrypt.crypto import Keyring, Recipient, Secret
    from bmcrypt.inspect import KeyChoice

#: Every command's help: -h too, and lines up to 100 columns where the terminal has them.
HELP_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def typer_app(name: str, help: str, **settings: object) -> typer.Typer:  # noqa: A002 - Typer's
    """A Typer app (the CLI or a group of it) with the settings every bmcrypt app shares:
    help in click's plain format (Typer's rich panels import rich's Markdown, pygments and
    tracebacks first, 70 ms of a 146 ms `--help`; issue 17's goal is 120 ms), -h, whole command
    lines in its command list, and no locals in a traceback (keys must never reach one)."""
    return typer.Typer(cls=HelpGroup, name=name, help=help, no_args_is_help=True,
                       context_settings=HELP_SETTINGS, pretty_exceptions_show_locals=False,
                       rich_markup_mode=None, **settings)  # type: ignore[arg-type]


class HelpGroup(typer.core.TyperGroup):
    """A group whose command list shows each command's whole first paragraph, wrapped, where
    click's plain help cuts it at the column's width with "..."."""

    def format_commands(self, ctx: typer.Context, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                first = (cmd.help or "").strip().split("\n\n")[0]
                rows.append((name, " ".join(first.split())))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

# ---------------------------------------------------------------- how the run talks (mode.py)


def _command_of(ctx: typer.Context) -> None:
    # A command of a group (`license issue`) is named with its group.
    group = ctx.parent.info_name if ctx.parent is not None and ctx.parent.parent is not None \
        else None
    mode.current.command = f"{group} {ctx.info_name}" if group else ctx.info_name


def set_json_mode(ctx: typer.Context, value: bool) -> bool:
    """The callback of every --json: the run prints one document (jsondoc.py)."""
    _command_of(ctx)
    mode.current.json = mode.current.json or value
    return value


def _quiet_mode(ctx: typer.Context, value: bool) -> bool:
    _command_of(ctx)
    mode.current.quiet = mode.current.quiet or value
    return value


def _verbose_mode(ctx: typer.Context, value: bool) -> bool:
    _command_of(ctx)
    mode.current.verbose = mode.current.verbose or value
    return value


JsonOut = Annotated[bool, typer.Option(
    "--json", callback=set_json_mode,
    help="Print one JSON document on stdout (schemas/json/).")]
Quiet = Annotated[bool, typer.Option(
    "--quiet", "-q", callback=_quiet_mode, help="Print only errors and the data asked for.")]
Verbose = Annotated[bool, typer.Option(
    "--verbose", "-v", callback=_verbose_mode,
    help="Also say which keys were used and how long each file took.")]

# ---------------------------------------------------------------- many models (batch.py)

Recursive = Annotated[bool, typer.Option(
    "--recursive", "-r", help="A directory stands for every *.bmodel under it.")]
#: `encrypt` gives -r to --recipient (as age does), so its --recursive is long only.
RecursiveLong = Annotated[bool, typer.Option(
    "--recursive", help="A directory stands for every *.bmodel under it.")]
Jobs = Annotated[int, typer.Option(
    "--jobs", "-j", min=1, metavar="N", help="Process N files at a time.")]

# ---------------------------------------------------------------- keys and the rest

KeyRing = Annotated[list[Path] | None, typer.Option(
    "--key", "-k", metavar="KEYFILE",
    help="Key file; repeat it for a key ring, each file then opens with the key of its key id "
         "(default: $BMCRYPT_KEY_FILE).")]
UsePassphrase = Annotated[bool, typer.Option(
    "--passphrase", "-p", help="Use a passphrase (prompted, or $BMCRYPT_PASSPHRASE).")]
RuntimeDir = Annotated[Path | None, typer.Option(
    "--runtime", metavar="DIR",
    help="Vendor runtime directory with libbmrt.so and libbmlib.so (default: found).")]
Strategy = Annotated[str, typer.Option(
    "--strategy", metavar="callback|memory",
    help="How encrypted models are decrypted into the runtime.")]
BackupPath = Annotated[Path | None, typer.Option(
    "--backup", metavar="PATH", help="Backup file or directory (default: MODEL.bak).")]
Licences = Annotated[list[Path] | None, typer.Option(
    "--license", metavar="LICENSE",
    help="License for models that demand one; repeat it for several "
         "(default: $BMCRYPT_LICENSE_FILE, paths separated by ':').")]
Output = Annotated[Path | None, typer.Option(
    "--output", "-o", metavar="OUT", help="Write a new file; MODEL stays as it is.")]


Recipients = Annotated[list[str] | None, typer.Option(
    "--recipient", "-r", metavar="RECIPIENT",
    help="Also encrypt for this X25519 recipient (bmcrypt1…, from `bmcrypt keygen --x25519`); "
         "repeat it for several.")]
RecipientsFile = Annotated[list[Path] | None, typer.Option(
    "--recipients-file", "-R", metavar="FILE",
    help="Also encrypt for the recipients in FILE, one per line (# comments).")]
RecipientSlots = Annotated[int | None, typer.Option(
    "--recipient-slots", min=1, max=255, metavar="N",
    help="Room for N recipients in the file, to add some later without rewriting it "
         "(default 16).")]

# ---------------------------------------------------------------- keys


def recipients(strings: Sequence[str] | None, files: Sequence[Path] | None) -> list[Recipient]:
    """The X25519 recipients of -r and -R, each checked (checksum, prefix, length), in order."""
    from bmcrypt.crypto import Recipient
    from bmcrypt.errors import UsageError

    found: list[tuple[str, str]] = [(s, "-r") for s in strings or ()]
    for path in files or ():
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read recipients file {path}: "
                             f"{getattr(exc, 'strerror', None) or exc}",
                             hint="one bmcrypt1… recipient a line, # for comments") from None
        for n, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if line:
                found.append((line, f"{path}:{n}"))
    out: list[Recipient] = []
    for text, where in found:
        try:
            recipient = Recipient.parse(text)
        except ValueError as exc:
            hint = "recipients look like bmcrypt1… (see `bmcrypt keygen -y IDENTITY`)"
            if where == "-r" and Path(text).is_dir():
                hint = "-r is --recipient for encrypt: pass --recursive for a directory"
            raise UsageError(f"{where}: not a recipient: {exc}", hint=hint) from None
        if recipient not in out:
            out.append(recipient)
    return out


def writers(keys: Sequence[Path] | None, passphrase: bool,
            public: Sequence[Recipient]) -> list[Secret | Recipient]:
    """Everyone a new file is encrypted for: every --key (key or identity file), the
    --passphrase (asked twice), the -r/-R recipients; with none of them, the environment's key
    (keys.resolve_keys). The environment is not consulted when recipients are given: encrypting
    for devices must not silently also encrypt for whatever key this shell holds."""
    from bmcrypt.keys import load_key_file, resolve_keys

    found: list[Secret | Recipient] = [load_key_file(k) for k in _paths(keys)]
    if passphrase:
        found.append(resolve_keys(None, True, prompt=_confirmed))
    if not found and not public:
        found.append(resolve_keys(None, None, prompt=_confirmed))
    _say_keys(found)
    everyone = found + list(public)
    ids = [getattr(w, "key_id_hex", None) for w in everyone]
    if len({i for i in ids if i}) < len([i for i in ids if i]):
        from bmcrypt.errors import UsageError

        raise UsageError("the same key or recipient is given twice",
                         hint="give each --key and -r once")
    return everyone


def secret(keys: Sequence[Path] | Path | None, passphrase: bool, *,
           confirm: bool = False) -> Secret:
    """The one key a command writes with: --key, --passphrase, else the environment
    (keys.resolve_keys). Several --key are a usage error: a file has one key block.

    `confirm`: a new passphrase is asked for twice (encrypting under a typo loses the file).
    """
    from bmcrypt.errors import UsageError
    from bmcrypt.keys import resolve_keys

    ring = _paths(keys)
    if len(ring) > 1:
        raise UsageError(f"this command writes with one key, {len(ring)} --key were given",
                         hint="pass --key once")
    found = resolve_keys(ring[0] if ring else None, passphrase or None,
                         prompt=_confirmed if confirm else _ask)
    _say_keys([found])
    return found


def keyring(keys: Sequence[Path] | Path | None, passphrase: bool) -> Keyring:
    """The keys a command may open files with: every --key (a key ring: each file picks the
    key of its key id), else --passphrase, else the environment."""
    from bmcrypt.keys import load_key_file

    ring = _paths(keys)
    if len(ring) < 2:
        return secret(ring, passphrase)
    if passphrase:
        from bmcrypt.errors import KeyProblem

        raise KeyProblem("--key and --passphrase exclude each other", hint="pass only one")
    loaded = [load_key_file(k) for k in ring]
    _say_keys(loaded)
    return loaded


def licensed(ring: Keyring | None, licences: Sequence[Path] | None, *,
             on_device: bool = False) -> Keyring | None:
    """`ring` with the licences of --license (else $BMCRYPT_LICENSE_FILE) attached, for models
    that demand one (FORMAT.md §8.5). Commands that run on no device (decrypt, verify, inspect,
    rekey) have no serial number: `on_device=False` says so, and a device-bound licence then
    fails with a hint saying why. The loaders set the device for run and chat."""
    paths = list(licences or ())
    if not paths:
        env = os.environ.get(ENV_LICENCE_FILE) or os.environ.get(ENV_LICENCE_FILE_ALIAS) or ""
        paths = [Path(p) for p in env.split(":") if p]
    if not paths or ring is None:
        return ring
    from bmcrypt.licence import LicenceSet, load_licence_file, with_licences

    found = LicenceSet([load_licence_file(p) for p in paths])
    if not on_device:
        found.set_device_sn(None, on_device=False)
    return with_licences(ring, found)


ENV_LICENCE_FILE = "BMCRYPT_LICENSE_FILE"
ENV_LICENCE_FILE_ALIAS = "BMCRYPT_LICENCE_FILE"


def _paths(keys: Sequence[Path] | Path | None) -> list[Path]:
    if keys is None:
        return []
    return [keys] if isinstance(keys, Path) else list(keys)


def _say_keys(found: Sequence[Secret]) -> None:
    """-v: which keys are in use, by key id (never anything more)."""
    if not mode.current.verbose or mode.current.quiet:
        return
    from bmcrypt.cli import output

    ids = [getattr(k, "key_id_hex", None) or "a passphrase" for k in found]
    output.note(f"keys: {', '.join(ids)}")


def new_secret(key: Path | None, passphrase: bool) -> Secret:
    """The new key of `rekey`: a key file, or a passphrase asked for twice (never from $ENV)."""
    from bmcrypt.errors import NoKey
    from bmcrypt.keys import load_key_file, resolve_keys

    if (key is None) == (not passphrase):
        raise NoKey("give the new key: --new-key NEW or --new-passphrase",
                    hint="create one with `bmcrypt keygen -o NEW`")
    if key is not None:
        return load_key_file(key)
    return resolve_keys(None, True, env={}, prompt=_confirmed)


def secret_if_needed(paths: Sequence[Path], key: Sequence[Path] | Path | None,
                     passphrase: bool) -> Keyring | None:
    """The key for commands that also take plain models (run, chat).

    --key / --passphrase are always honoured (a bad key file is an error even for plain
    models). The environment is consulted only when a model is encrypted; with no key at all,
    None: the loader then names the file that needs one.
    """
    from bmcrypt.files.opening import stat_input
    from bmcrypt.keys import ENV_KEY_FILE, ENV_PASSPHRASE
    from bmcrypt.protect.container import FileState, file_state

    for p in paths:  # a missing model, a FIFO, a directory: said first, before anything waits
        stat_input(p)
    if _paths(key) or passphrase:
        return keyring(key, passphrase)
    if not any(file_state(p) == FileState.BMCRYPT for p in paths):
        return None
    if not (os.environ.get(ENV_KEY_FILE) or os.environ.get(ENV_PASSPHRASE)):
        return None
    return secret(None, False)


def key_choice(keys: Sequence[Path] | Path | None, passphrase: bool,
               licences: Sequence[Path] | None = None) -> KeyChoice | None:
    """`inspect`'s key, never required: --key is loaded now (a bad key file is an error even
    for plain models), a passphrase is asked for only when a bmcrypt file needs it, and
    $BMCRYPT_KEY_FILE is a soft default."""
    from bmcrypt.errors import KeyProblem
    from bmcrypt.inspect import KeyChoice
    from bmcrypt.keys import ENV_KEY_FILE, load_key_file

    ring = _paths(keys)
    if ring and passphrase:
        raise KeyProblem("--key and --passphrase exclude each other", hint="pass only one")
    if ring:
        loaded = [load_key_file(k) for k in ring]
        return KeyChoice(lambda: licensed(loaded if len(loaded) > 1 else loaded[0], licences),
                         explicit=True)
    if passphrase:
        return KeyChoice(lambda: licensed(secret(None, True), licences), explicit=True)
    env_key = os.environ.get(ENV_KEY_FILE)
    if env_key:
        return KeyChoice(lambda: licensed(load_key_file(env_key), licences), explicit=False)
    return None


def _need_terminal() -> None:
    """Refuse to prompt without a terminal: getpass would then warn that the passphrase "may be
    echoed" and read it from stdin, which is the model data of a pipeline, or nothing."""
    from bmcrypt.errors import NoKey
    from bmcrypt.keys import ENV_PASSPHRASE

    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        raise NoKey("--passphrase: there is no terminal to ask for it on",
                    hint=f"set {ENV_PASSPHRASE}, or use --key KEYFILE") from None
    os.close(fd)


def _ask(text: str) -> str:
    _need_terminal()
    return getpass.getpass(text)


def _confirmed(text: str) -> str:
    from bmcrypt.errors import NoKey

    _need_terminal()
    first = getpass.getpass(text)
    if getpass.getpass("again: ") != first:
        raise NoKey("the two passphrases differ")
    return first


def choice(value: str, allowed: Sequence[str], flag: str) -> str:
    """`value` if it is one of `allowed`, else a usage error naming `flag`."""
    if value not in allowed:
        from bmcrypt.errors import UsageError

        raise UsageError(f"{flag}: {value!r} is not one of {', '.join(allowed)}",
                         hint=f"use one of {', '.join(allowed)}")
    return value


#: A command function as registered with the app.
Command = Callable[..., None]
