"""Where every byte of the binary region goes when weights are sealed or opened.

Encrypting replaces each selected weight range by an envelope that is longer than its plaintext,
so everything behind it moves. The plan lists the new binary region as an ordered sequence of
pieces (clear copies, envelopes, zero padding) and rewrites every `Binary` in the FlatBuffer to
its new place. Nothing here reads bytes or does crypto: it is arithmetic over the model tree.

Alignment: pieces are padded so that every clear byte keeps its original offset modulo 4 KiB
(the vendor tool aligns regions to 4 KiB; keeping the residue keeps whatever alignment the
original had, at a cost of < 4 KiB per envelope).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bmcrypt.bmodel import is_schema_table
from bmcrypt.errors import AlreadyEncrypted, Corrupt

if TYPE_CHECKING:  # the generated classes load on first use: they import numpy (issue 17)
    from bmcrypt.bmodel import BinaryT, CoeffMemT, ModelT

ALIGN = 4096


@dataclass
class Piece:
    """One contiguous run of the new binary region.

    kind "clear": copy bytes [src, src + size) of the old region; "seal": when sealing, the
    envelope of the old range [src, src + src_size); when opening, the plaintext of the envelope
    there; "zero": `size` zero bytes of padding.
    """

    kind: str
    src: int
    size: int  # bytes this piece occupies in the new region
    dst: int  # offset of the piece in the new region
    src_size: int = 0  # bytes it occupies in the old region (seal pieces)
    plain_size: int = 0  # seal pieces: plaintext length
    check_code: bytes = b""  # seal pieces: expected SHA-256 of the plaintext
    nets: tuple[str, ...] = ()  # seal pieces: the nets whose weights these are


@dataclass
class Plan:
    """The new binary region: its pieces in order and its total size."""

    pieces: list[Piece] = field(default_factory=list)
    size: int = 0

    def clear_runs(self) -> list[tuple[int, int]]:
        """Maximal (offset, length) runs of the new region that are not envelopes (FORMAT §5)."""
        runs: list[tuple[int, int]] = []
        for p in self.pieces:
            if p.kind == "seal" or p.size == 0:
                continue
            if runs and runs[-1][0] + runs[-1][1] == p.dst:
                runs[-1] = (runs[-1][0], runs[-1][1] + p.size)
            else:
                runs.append((p.dst, p.size))
        return runs

    def seal_pieces(self) -> list[Piece]:
        return [p for p in self.pieces if p.kind == "seal"]


# ---------------------------------------------------------------- walking the model tree


def walk_binaries(model: ModelT) -> Iterator[tuple[Any, str, BinaryT]]:
    """Every `Binary` struct reachable from the model, as (owner, attribute, binary).

    Generic over the generated object API, so a field added to the schema is never forgotten.
    Vectors of structs (e.g. sdma_commands) are reported with attribute "name[i]".
    """
    from bmcrypt.bmodel import BinaryT

    stack: list[Any] = [model]
    while stack:
        obj = stack.pop()
        for name, value in vars(obj).items():
            if isinstance(value, BinaryT):
                yield obj, name, value
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, BinaryT):
                        yield obj, f"{name}[{i}]", item
                    elif is_schema_table(item):
                        stack.append(item)
            elif is_schema_table(value):
                stack.append(value)


def coeff_mems(model: ModelT) -> Iterator[tuple[str, int, CoeffMemT]]:
    """(net name, stage index, CoeffMem) for every stage that has weights."""
    for net in model.net or []:
        name = _text(net.name)
        for stage, param in enumerate(net.parameter or []):
            if param.coeffMem is not None and param.coeffMem.binaryCoeff is not None:
                yield name, stage, param.coeffMem


def coeff_regions(tree: dict[str, Any]) -> Iterator[tuple[str, int, int, int, int]]:
    """(net name, stage index, encrypt_mode, start, size) of every stage's weights, as
    `coeff_mems` finds them, from the tree ``decode_flatbuffer`` verified and returned: what
    only reads the metadata needs neither the generated code nor numpy (issue 17)."""
    for net in tree["net"] or ():
        name = _text(net["name"])
        for stage, param in enumerate(net["parameter"] or ()):
            cm = param["coeff_mem"]
            if cm is not None and cm["binary_coeff"] is not None:
                start, size = cm["binary_coeff"]
                yield name, stage, cm["encrypt_mode"], start, size


def _text(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value or ""


# ---------------------------------------------------------------- planning


def plan_seal(
    model: ModelT,
    region_size: int,
    nets: set[str] | None,
    envelope_length: Callable[[int], int],
) -> Plan:
    """Plan the encrypted binary region and rewrite `model` in place to match it.

    `nets`: the nets whose weights are sealed (None: all). Weights shared with an unselected net
    are sealed too (both nets point at one envelope). Empty weights stay clear (nothing to hide,
    and a zero-length decrypt would hand the runtime a NULL buffer).
    """
    sealed: dict[tuple[int, int], list[tuple[str, CoeffMemT]]] = {}
    for net, _stage, cm in coeff_mems(model):
        if cm.encryptMode != 0:
            raise AlreadyEncrypted(f"the weights of net {net!r} are already encrypted "
                                   f"(encrypt_mode {cm.encryptMode})")
        b = cm.binaryCoeff
        if b.size and (nets is None or net in nets):
            sealed.setdefault((b.start, b.size), [])
    for net, _stage, cm in coeff_mems(model):
        key = (cm.binaryCoeff.start, cm.binaryCoeff.size)
        if key in sealed:
            sealed[key].append((net, cm))
    ranges = sorted(sealed)
    _check_disjoint(ranges)

    plan, mapping = _layout(ranges, region_size, lambda r: envelope_length(r[1]))
    for (start, size), users in sealed.items():
        piece = mapping[(start, size)]
        piece.plain_size = size
        codes = {bytes(_u8(cm.checkCode)) for _, cm in users}
        if len(codes) != 1 or len(next(iter(codes))) != 32:
            raise Corrupt(f"weights of net {users[0][0]!r} have no valid check_code")
        piece.check_code = codes.pop()
        piece.nets = tuple(sorted({n for n, _ in users}))
        for _, cm in users:
            cm.encryptMode = 1
            cm.decryptSize = size
    _remap(model, plan, mapping, sealed_keys=set(sealed))
    return plan


def plan_open(model: ModelT, region_size: int) -> Plan:
    """Plan the plain binary region of an encrypted model and rewrite `model` to match it."""
    for net in model.net or []:  # as the plain reader: the runtime dereferences binary_coeff
        if any(p.coeffMem and p.coeffMem.binaryCoeff is None for p in net.parameter or []):
            raise Corrupt(f"net {_text(net.name)!r} has a coeff_mem without binary_coeff")
    opened: dict[tuple[int, int], list[tuple[str, CoeffMemT]]] = {}
    for net, _stage, cm in coeff_mems(model):
        if cm.encryptMode == 1:
            if cm.binaryCoeff.size == 0:  # no envelope is empty (and clear spans must not touch)
                raise Corrupt(f"the encrypted weights of net {net!r} are empty")
            opened.setdefault((cm.binaryCoeff.start, cm.binaryCoeff.size), []).append((net, cm))
        elif cm.encryptMode != 0:
            raise Corrupt(f"net {net!r} has unknown encrypt_mode {cm.encryptMode}")
    ranges = sorted(opened)
    _check_disjoint(ranges)
    sizes = {}
    for key, users in opened.items():
        plain = {cm.decryptSize for _, cm in users}
        if len(plain) != 1:
            raise Corrupt(f"weights of net {users[0][0]!r} declare different sizes")
        sizes[key] = plain.pop()

    plan, mapping = _layout(ranges, region_size, lambda r: sizes[r])
    for key, users in opened.items():
        piece = mapping[key]
        piece.plain_size = sizes[key]
        piece.check_code = bytes(_u8(users[0][1].checkCode))
        piece.nets = tuple(sorted({n for n, _ in users}))
        for _, cm in users:
            cm.encryptMode = 0
            cm.decryptSize = 0
    _remap(model, plan, mapping, sealed_keys=set(opened))
    return plan


def _u8(values: Any) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _check_disjoint(ranges: list[tuple[int, int]]) -> None:
    for (a_start, a_size), (b_start, _b_size) in zip(ranges, ranges[1:], strict=False):
        if a_start + a_size > b_start:
            raise Corrupt("two weight regions overlap partially")


def _layout(
    ranges: list[tuple[int, int]], region_size: int, new_size: Callable[[tuple[int, int]], int]
) -> tuple[Plan, dict[tuple[int, int], Piece]]:
    """Lay out clear spans and replaced ranges in their original order, keeping residues mod
    4 KiB."""
    plan = Plan()
    mapping: dict[tuple[int, int], Piece] = {}
    old = new = 0

    def clear_until(end: int) -> None:
        nonlocal old, new
        if end > old:
            pad = (old - new) % ALIGN  # keep the clear bytes' residue modulo ALIGN
            if pad:
                plan.pieces.append(Piece("zero", 0, pad, new))
                new += pad
            plan.pieces.append(Piece("clear", old, end - old, new))
            new += end - old
            old = end

    for start, size in ranges:
        if start + size > region_size:
            raise Corrupt("weights point outside the binary region")
        clear_until(start)
        piece = Piece("seal", start, new_size((start, size)), new, src_size=size)
        plan.pieces.append(piece)
        mapping[(start, size)] = piece
        new += piece.size
        old = start + size
    clear_until(region_size)
    plan.size = new
    return plan, mapping


def _remap(model: ModelT, plan: Plan, mapping: dict[tuple[int, int], Piece],
           sealed_keys: set[tuple[int, int]]) -> None:
    """Point every Binary at its new place; a clear Binary must not straddle a replaced range."""
    clear = [p for p in plan.pieces if p.kind == "clear"]
    starts = [p.src for p in clear]
    for _owner, _attr, b in walk_binaries(model):
        key = (b.start, b.size)
        if key in sealed_keys:
            piece = mapping[key]
            b.start, b.size = piece.dst, piece.size
            continue
        i = bisect.bisect_right(starts, b.start) - 1
        inside = i >= 0 and b.start + b.size <= clear[i].src + clear[i].size
        if inside:
            b.start = clear[i].dst + (b.start - clear[i].src)
        elif b.size == 0:
            b.start = 0  # an empty reference carries no bytes; any in-range offset will do
        else:
            raise Corrupt("a region of the model overlaps its weights")
