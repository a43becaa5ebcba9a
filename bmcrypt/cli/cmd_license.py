"""`bmcrypt license keygen | issue | show`: the vendor's side of offline licenses (FORMAT.md §8.5).

The user's side is `--license FILE` (or $BMCRYPT_LICENSE_FILE) on every command that opens a
model, and `encrypt --require-license KEY`, which makes a file demand a license.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Annotated, Any

import typer

from bmcrypt.cli import jsondoc, mode, output
from bmcrypt.cli.options import JsonOut, Quiet, Verbose, typer_app

app = typer_app(
    "license", "Offline licenses: a signing key, licenses bound to a model, an expiry and devices.")

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@app.command("keygen")
def keygen(
    out: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="SIGNING_KEY",
        help="Where to write the new signing key (mode 0600; never overwritten).")] = None,
    show: Annotated[Path | None, typer.Option(
        "-y", metavar="SIGNING_KEY", help="Print the public key of an existing signing key.")
    ] = None,
    json_: JsonOut = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Create an Ed25519 signing key for licenses; print its public key (bmcryptlic1…)."""
    from bmcrypt.errors import UsageError
    from bmcrypt.licence import generate_signing_key_file, load_signing_key

    if (out is None) == (show is None):
        raise UsageError("give -o SIGNING_KEY (a new key) or -y SIGNING_KEY (an existing one)",
                         hint="see `bmcrypt license keygen --help`")
    key = generate_signing_key_file(out) if out is not None else load_signing_key(show)  # type: ignore[arg-type]
    if mode.current.json:  # the public key and where the secret is, never the secret
        jsondoc.emit(True, path=str(out or show), public_key=key.public_string)
        return
    output.data(key.public_string)
    if out is not None:
        output.note(f"wrote signing key to {out}; encrypt with --require-license "
                    f"{key.public_string} and sign licenses with it")
        output.note("keep it secret and back it up: without it, no new license can be issued")


@app.command("issue")
def issue(
    signing_key: Annotated[Path, typer.Option(
        "--signing-key", metavar="SIGNING_KEY", help="The vendor's signing key file.")],
    model: Annotated[Path, typer.Option(
        "--model", "-m", metavar="MODEL",
        help="The encrypted model the license is for (only its clear header is read).")],
    not_after: Annotated[str, typer.Option(
        "--not-after", metavar="DATE",
        help="Last moment of validity, UTC: a date (valid through that whole day) or an ISO "
             "date and time (2027-06-30T12:00:00Z).")],
    out: Annotated[Path, typer.Option(
        "--output", "-o", metavar="LICENSE", help="Where to write the license.")],
    device_sn: Annotated[list[str] | None, typer.Option(
        "--device-sn", metavar="SN",
        help="Valid only on the device with this serial number; repeat for several "
             "(default: any device).")] = None,
    json_: JsonOut = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Sign a license for MODEL, valid until DATE (and on the given devices only)."""
    from bmcrypt.licence import issue_licence, load_signing_key, parse_licence
    from bmcrypt.licence.terms import read_terms

    expiry = parse_not_after(not_after)
    serials = _serials(device_sn or [])
    key = load_signing_key(signing_key)
    terms = read_terms(model)
    _check_terms(model, terms, key.public_key)
    data = issue_licence(key, terms.file_id, expiry, serials)
    _write(out, data)
    licence = parse_licence(data, str(out))
    if expiry < datetime.now(UTC).timestamp():
        output.warning(f"the license expired already ({licence.expires})")
    if mode.current.json:
        jsondoc.emit(True, path=str(out), **licence_json(licence))
        return
    where = ", ".join(licence.serial_strings()) or "any device"
    output.note(f"wrote license {out} for {model} (file {terms.file_id.hex()}): valid until "
                f"{licence.expires} on {where}")


@app.command("show")
def show(
    licence: Annotated[Path, typer.Argument(metavar="LICENSE", help="A license file.")],
    json_: JsonOut = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Show what a license says and whether its signature is intact."""
    from bmcrypt.licence import load_licence_file

    lic = load_licence_file(licence)
    fields = licence_json(lic)
    if mode.current.json:
        jsondoc.emit(True, path=str(licence), **fields)
        return
    output.data(f"license:    {licence}")
    output.data(f"file id:    {fields['file_id']}")
    state = "expired" if fields["expired"] else "valid"
    output.data(f"not after:  {fields['not_after']} ({state} by this host's clock)")
    output.data(f"devices:    {', '.join(fields['device_sns']) or 'any'}")
    output.data(f"signed by:  {fields['signer']}")
    output.data(f"signature:  {'intact' if fields['signature_ok'] else 'BROKEN (altered)'}")


def licence_json(lic: Any) -> dict[str, Any]:
    """The fields of a license in a JSON document (all public)."""
    from bmcrypt.licence import encode_public_key

    return {"file_id": lic.file_id.hex(), "not_after": lic.expires,
            "not_after_unix": lic.not_after,
            "expired": datetime.now(UTC).timestamp() > lic.not_after,
            "device_sns": lic.serial_strings(), "signer": encode_public_key(lic.signer),
            "signature_ok": lic.signature_valid()}


def parse_not_after(text: str) -> int:
    """--not-after: ``2027-06-30`` is valid through 23:59:59 UTC of that day; a date and time
    (``2027-06-30T12:00:00``, ``Z`` or an offset, or none: UTC) through that second."""
    from bmcrypt.errors import UsageError

    try:
        if _DATE.fullmatch(text):
            day = datetime.strptime(text, "%Y-%m-%d").date()
            moment = datetime.combine(day, time(23, 59, 59), UTC)
        else:
            moment = datetime.fromisoformat(text.replace("z", "Z"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        raise UsageError(f"--not-after: {text!r} is not a date (2027-06-30) or an ISO date and "
                         "time (2027-06-30T12:00:00Z)", hint="times are UTC unless an offset "
                         "is given") from None
    return int(moment.timestamp())


def _serials(given: list[str]) -> list[bytes]:
    from bmcrypt.errors import UsageError
    from bmcrypt.licence.licence_file import MAX_SERIAL_LEN, MAX_SERIALS

    serials = [sn.encode("utf-8", "surrogateescape") for sn in given]
    if len(serials) > MAX_SERIALS:
        raise UsageError(f"{len(serials)} --device-sn; a license lists at most {MAX_SERIALS}",
                         hint="issue several licenses")
    for sn in serials:
        if not 1 <= len(sn) <= MAX_SERIAL_LEN:
            raise UsageError(f"--device-sn: a serial number is 1..{MAX_SERIAL_LEN} bytes",
                             hint="give it as bm_get_sn reports it (17 characters on SoC boxes)")
    if len(set(serials)) != len(serials):
        raise UsageError("--device-sn: a serial number is given twice", hint="give each once")
    return serials


def _check_terms(model: Path, terms: Any, public_key: bytes) -> None:
    """A license the model would never accept is refused before it is written."""
    from bmcrypt.errors import UsageError
    from bmcrypt.licence import encode_public_key

    if not terms.requires_licence:
        raise UsageError(f"{model} does not demand a license, so a license changes nothing",
                         hint="encrypt it with --require-license SIGNING_KEY first")
    if terms.licence_key != public_key:
        raise UsageError(f"{model} demands licenses signed by "
                         f"{encode_public_key(terms.licence_key)}, not by this signing key "
                         f"({encode_public_key(public_key)})",
                         hint="sign with the key the model was encrypted for")


def _write(out: Path, data: bytes) -> None:
    from bmcrypt.files.atomic import atomic_write

    with atomic_write(out, mode=0o644) as f:  # a license is public; replacing one is fine
        f.write(data)
