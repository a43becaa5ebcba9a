"""Comparing several files by their weights (same coeff regions by SHA-256 and size)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bmcrypt.inspect.report import Comparison, FileFailure, FileReport, SharedRegion

# ---------------------------------------------------------------- comparing files


def compare(results: Sequence[FileReport | FileFailure]) -> Comparison:
    """Which weight regions (by SHA-256 and plaintext size) the files have in common."""
    compared: list[FileReport] = []
    not_compared: list[dict[str, str]] = []
    for r in results:
        if isinstance(r, FileFailure):
            not_compared.append({"path": r.path, "reason": "could not be inspected"})
        elif not r.weights_visible:
            reason = ("encrypted by another tool" if r.encryption["state"] == "foreign"
                      else "encrypted by bmcrypt; no key given")
            not_compared.append({"path": r.path, "reason": reason})
        else:
            compared.append(r)
    where: dict[tuple[Any, ...], list[int]] = {}  # by position: a path may be given twice
    for i, r in enumerate(compared):
        for c in r.coeff_regions or ():
            # A region without a check_code can only be told apart by where it is.
            ident = (c.sha256, c.size) if c.sha256 else (None, c.size, i, c.offset)
            found = where.setdefault(ident, [])
            if i not in found:
                found.append(i)
    regions = [SharedRegion(k[0], k[1], [compared[i].path for i in v]) for k, v in where.items()]
    visible = _verdict(len(compared), regions) if len(compared) > 1 else None
    overall = visible if not not_compared and visible is not None else "unknown"
    return Comparison(overall, visible, [r.path for r in compared], not_compared, regions)


def _verdict(n_files: int, regions: list[SharedRegion]) -> str:
    if all(len(r.files) == n_files for r in regions):
        return "identical"
    if all(len(r.files) == 1 for r in regions):
        return "different"
    return "partly_shared"


