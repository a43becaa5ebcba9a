"""Reports of encrypted files: bmcrypt (with or without a key) and foreign ones."""

from __future__ import annotations

import mmap
from dataclasses import replace
from pathlib import Path
from typing import Any

from bmcrypt.bmodel import decode_flatbuffer, reader
from bmcrypt.bmodel.header import Header
from bmcrypt.bmodel.memory import memory_info
from bmcrypt.bmodel.model import BModel
from bmcrypt.crypto import (
    MAX_HEADER_LEN,
    Kind,
    parse_header,
    parse_key_area,
    parse_key_block,
)
from bmcrypt.crypto import Header as EnvelopeHeader
from bmcrypt.errors import Corrupt, Truncated
from bmcrypt.inspect.plain import plain_report
from bmcrypt.inspect.report import (
    ALGORITHMS,
    CLEAR_PREFIX,
    HIDDEN_NOTE,
    KEY_SOURCES,
    FileReport,
    LayoutEntry,
)
from bmcrypt.protect.opened import Opened, probe
from bmcrypt.protect.restore import RestoreRecord

# ---------------------------------------------------------------- foreign


def foreign_report(path: Path, size: int, header_size: int) -> FileReport:
    if header_size < CLEAR_PREFIX:  # no encrypting tool can have written that
        raise Corrupt(f"header_size {header_size} is smaller than the 8 bytes before it")
    why = (f"header_size is {header_size}, not 64," if header_size != 64
           else "header_size is 64 but the reserved header bytes are not zero, and")
    layout = [LayoutEntry("clear_header", 0, CLEAR_PREFIX, "magic, header_size")]
    notes = [f"encrypted by another tool: {why} bytes 8..12 are not bmcrypt's BMCE; "
             "only the clear 8 bytes can be read (decrypt it with that tool's library first)"]
    if header_size <= size:
        layout += [LayoutEntry("encrypted_header", CLEAR_PREFIX, header_size - CLEAR_PREFIX,
                               "header tail, encrypted"),
                   LayoutEntry("opaque", header_size, size - header_size,
                               "FlatBuffer and binary region (boundary unknown)")]
    else:
        layout.append(LayoutEntry("opaque", CLEAR_PREFIX, size - CLEAR_PREFIX,
                                  "encrypted header and the rest"))
        notes.append(f"header_size {header_size} is beyond the end of the {size}-byte file: "
                     "it may be truncated")
    return FileReport(str(path), size, {"state": "foreign", "header_size": header_size},
                      [p for p in layout if p.size], notes=notes)


# ---------------------------------------------------------------- bmcrypt


def _map(path: Path) -> mmap.mmap:
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def sealed_report(path: Path) -> FileReport:
    """A bmcrypt file seen without its key (FORMAT.md §2-§4: the public headers only)."""
    mm = _map(path)
    try:
        visible = probe(mm, path)
        size = len(mm)
    finally:
        mm.close()
    hs = visible.header_size
    e2 = visible.flatbuffer_envelope
    if e2 is None or hs + e2.envelope_len > size:
        raise Truncated(f"{path}: the file ends inside its FlatBuffer envelope")
    fb_len = e2.envelope_len
    layout = [LayoutEntry("clear_header", 0, CLEAR_PREFIX, "magic, header_size"),
              LayoutEntry("header_envelope", CLEAR_PREFIX, hs - CLEAR_PREFIX, "header tail"),
              LayoutEntry("flatbuffer_envelope", hs, fb_len, _fb_label(e2.kind)),
              LayoutEntry("binary_region", hs + fb_len, size - hs - fb_len,
                          "binary region: weight envelopes and clear parts")]
    return FileReport(str(path), size, _bmcrypt_info(visible.envelope, e2, hs, fb_len,
                                                     size - hs - fb_len, opened=False),
                      [p for p in layout if p.size], notes=[HIDDEN_NOTE])


def _fb_label(kind: int) -> str:
    return "FlatBuffer + manifest" if kind == Kind.FLATBUFFER else "FlatBuffer"


def _key_info(e1: EnvelopeHeader, opened_with: bytes | None) -> dict[str, Any]:
    """Who opens the file, from E₁ (public: key ids and types, never a secret)."""
    if e1.version == 1:
        block = parse_key_block(e1.key_block)
        scrypt = None
        if block.scrypt is not None:
            scrypt = {"log2_n": block.scrypt.log2n, "r": block.scrypt.r, "p": block.scrypt.p}
        source = KEY_SOURCES[block.source]
        return {"key_source": source, "scrypt": scrypt, "key_id": block.key_id.hex(),
                "recipients": [{"key_id": block.key_id.hex(), "type": source}],
                "recipient_slots": None, "licence_required": False, "licence_key": None}
    area = parse_key_area(e1.key_area)
    chosen = next((s for s in area.stanzas if s.key_id == opened_with), area.stanzas[0])
    scrypt = None
    if chosen.scrypt is not None:
        scrypt = {"log2_n": chosen.scrypt.log2n, "r": chosen.scrypt.r, "p": chosen.scrypt.p}
    return {"key_source": chosen.describe, "scrypt": scrypt, "key_id": chosen.key_id.hex(),
            "recipients": [{"key_id": s.key_id.hex(), "type": s.describe}
                           for s in area.stanzas],
            "recipient_slots": area.slots, "licence_required": e1.licence_required,
            "licence_key": _signer(e1.licence_key) if e1.licence_required else None}


def _bmcrypt_info(e1: EnvelopeHeader, e2: EnvelopeHeader, header_size: int, fb_len: int,
                  binary_size: int, *, opened: bool, opened_with: bytes | None = None,
                  restore: RestoreRecord | None = None) -> dict[str, Any]:
    algorithm = e1.public[5]
    return {
        "state": "bmcrypt",
        "format_version": e1.public[4],
        "algorithm": algorithm,
        "algorithm_name": ALGORITHMS.get(algorithm, f"unknown({algorithm})"),
        "segment_size": e1.segment_size,
        **_key_info(e1, opened_with),
        "file_id": e1.file_id.hex(),
        "header_size": header_size,
        "header_envelope_size": header_size - CLEAR_PREFIX,
        "flatbuffer_envelope_size": fb_len,
        "binary_region_size": binary_size,
        # Kind 2 carries the manifest with the clear-region digest; the model_tool plugin
        # writes kind 0 envelopes without one (FORMAT.md §5).
        "clear_digest": e2.kind == Kind.FLATBUFFER,
        "opened": opened,
        # Version 2, once opened: the plain file that decrypting gives back byte for byte
        # (FORMAT.md §8.4); None without a key, or for a version-1 file (an equivalent one).
        "original_sha256": restore.sha256.hex() if restore is not None else None,
        "original_size": restore.length if restore is not None else None,
    }


def opened_report(o: Opened) -> FileReport:
    """An authenticated bmcrypt file, reported like the plain model it holds."""
    root = decode_flatbuffer(o.flatbuffer)
    m = model_from_flatbuffer(o.path, o.file_size,
                              Header(o.header_size, o.flatbuffers_size, o.binary_size), root)
    # Memory as for the decrypted file (what model_tool says of it, and what the runtime
    # uploads): weights count by their plaintext size, not by their envelope's.
    device, host = memory_info(_plaintext_sizes(root))
    m = replace(m, device_mem=device, host_mem=host)
    e2 = _envelope_header(o)
    info = _bmcrypt_info(o.envelope, e2, o.header_size, o.flatbuffers_size, o.binary_size,
                         opened=True, opened_with=o.keys.key_id, restore=o.restore)
    report = plain_report(m, root, encryption=info,
                           layout=_sealed_layout(m, _fb_label(e2.kind)))
    report.notes.append("header and FlatBuffer authenticated with key "
                        f"{info['key_id']}; the weights were not decrypted "
                        "(`bmcrypt verify` checks every byte)")
    if not info["clear_digest"]:
        report.notes.append("no clear-region digest: written by model_tool --encrypt with "
                            "libbmcrypt.so; commands and other clear parts are not covered")
    return report


def model_from_flatbuffer(path: Path, file_size: int, header: Header,
                          root: dict[str, Any]) -> BModel:
    """A BModel from an already decrypted and verified FlatBuffer (by ``decode_flatbuffer``).

    Uses the reader's builder as is: every Binary is checked against ``header.binary_size``
    and the layout tiles the file with ``header``'s sizes (here: the envelopes' sizes).
    """
    return reader.build_model(path, file_size, header, root)


def _plaintext_sizes(root: dict[str, Any]) -> dict[str, Any]:
    """A copy of a decoded Model whose encrypted coeffs have their plaintext size.

    Copies rather than edits: the walker shares tables referenced from several places.
    """
    def param(p: dict[str, Any]) -> dict[str, Any]:
        c = p["coeff_mem"]
        if c is None or not c["encrypt_mode"] or c["binary_coeff"] is None:
            return p
        coeff = {**c, "binary_coeff": (c["binary_coeff"][0], c["decrypt_size"])}
        return {**p, "coeff_mem": coeff}

    nets = [{**n, "parameter": [param(p) for p in n["parameter"] or ()]} for n in root["net"]]
    return {**root, "net": nets}


def _envelope_header(o: Opened) -> EnvelopeHeader:
    return parse_header(o.mm[o.header_size:o.header_size + MAX_HEADER_LEN], whole=False)


def _sealed_layout(m: BModel, fb_label: str) -> list[LayoutEntry]:
    """The reader's layout with the envelopes named: the clear 8 bytes, the header envelope,
    the FlatBuffer envelope, and ``coeff_envelope`` for encrypted weights."""
    encrypted = {(c.offset, c.size) for c in m.coeff_regions if c.encrypt_mode}
    out = []
    for p in m.layout:
        if p.kind == "header":
            out += [LayoutEntry("clear_header", 0, CLEAR_PREFIX, "magic, header_size"),
                    LayoutEntry("header_envelope", CLEAR_PREFIX, p.size - CLEAR_PREFIX,
                                "header tail")]
        elif p.kind == "flatbuffer":
            out.append(LayoutEntry("flatbuffer_envelope", p.offset, p.size, fb_label))
        elif p.kind == "coeff" and (p.offset, p.size) in encrypted:
            out.append(LayoutEntry("coeff_envelope", p.offset, p.size, p.label))
        else:
            out.append(LayoutEntry(p.kind, p.offset, p.size, p.label))
    return out


def _signer(public_key: bytes) -> str:
    """The licence signer as users write it (`bmcryptlic1…`, as `--require-license` takes it)."""
    from bmcrypt.licence import encode_public_key

    return encode_public_key(public_key)
