"""The human form of `bmcrypt inspect` (stdout): one section per file, then the comparison.

Columns are aligned here rather than with rich tables: a table is fitted to the terminal width
and would cut tensor names and hashes short when piped; these lines are never wrapped or cut,
so they stay greppable. rich only adds the styles (and never interprets text from the file as
markup).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text

from bmcrypt.cli.output import out, safe
from bmcrypt.inspect import report

_STATE_STYLE = {"plain": "green", "bmcrypt": "cyan", "foreign": "yellow"}
_VERDICT_STYLE = {"identical": "green", "partly_shared": "yellow", "different": "red",
                  "unknown": "yellow"}


def render(results: Sequence[report.FileReport | report.FileFailure],
           comparison: report.Comparison | None) -> None:
    """Print every readable file's report (failures go to stderr elsewhere), then the comparison."""
    first = True
    for r in results:
        if isinstance(r, report.FileFailure):
            continue
        if not first:
            out.print()
        first = False
        _file(r)
    if comparison is not None:
        out.print()
        _comparison(comparison, [r.path for r in results])


def _line(text: str = "", style: str = "") -> None:
    out.print(Text(safe(text), style=style))


def _styled(*parts: tuple[str, str]) -> None:
    """Names from a file (nets, tensors) can hold terminal escapes: every part is escaped."""
    out.print(Text.assemble(*((safe(t), style) for t, style in parts)))


def _columns(rows: Sequence[Sequence[str]], indent: int, right: Sequence[int] = ()) -> list[str]:
    """Rows as lines, every column padded to its widest cell (numbers in ``right`` columns
    right-aligned); the last column is not padded."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))] if rows else []
    lines = []
    for r in rows:
        cells = [c.rjust(widths[i]) if i in right else
                 c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r)]
        lines.append(" " * indent + "  ".join(cells).rstrip())
    return lines


# ---------------------------------------------------------------- one file


def _file(r: report.FileReport) -> None:
    _line(r.path, "bold")
    state = r.encryption["state"]
    rows = [["file", f"{r.size} bytes, {_state_text(r)}"]]
    if state == "bmcrypt":
        rows += _bmcrypt_rows(r.encryption)
    elif state == "foreign":
        rows.append(["header_size", str(r.encryption["header_size"])])
    if r.chip is not None:
        rows += [["chip", r.chip], ["version", r.version or ""], ["created", r.time or ""],
                 ["kernel module", _module_text(r.kernel_module)],
                 ["cpuop module", _module_text(r.cpuop_module)]]
    if r.device_mem is not None and r.host_mem is not None:
        d, h = r.device_mem, r.host_mem
        rows += [["device mem", f"{d.total} bytes (weight {d.weight}, instruct {d.instruct}, "
                                f"runtime {d.runtime})"],
                 ["host mem", f"{h.total} bytes (weight {h.weight}, runtime {h.runtime})"]]
    lines = _columns(rows, 2)
    first = Text(safe(lines[0]))
    first.highlight_words([_state_text(r)], _STATE_STYLE[state])
    out.print(first)
    for line in lines[1:]:
        _line(line)
    for note in r.notes:
        _styled(("  note: ", "yellow"), (note, ""))
    if r.nets is not None:
        _nets(r.nets)
    if r.coeff_regions is not None:
        _weights(r.coeff_regions)
    _layout(r)


def _state_text(r: report.FileReport) -> str:
    e = r.encryption
    if e["state"] == "plain":
        return "plain (not encrypted)"
    if e["state"] == "foreign":
        return "encrypted by another tool (foreign)"
    return "encrypted by bmcrypt" + ("" if e["opened"] else " (no key given)")


def _bmcrypt_rows(e: dict[str, Any]) -> list[list[str]]:
    if e["key_source"] == "passphrase":
        s = e["scrypt"]
        source = f"passphrase (scrypt log2 N {s['log2_n']}, r {s['r']}, p {s['p']})"
    else:
        source = e["key_source"]
    digest = ("yes (written by bmcrypt)" if e["clear_digest"]
              else "no (written by model_tool --encrypt with libbmcrypt.so)")
    return [
        ["format", f"bmcrypt v{e['format_version']}, {e['algorithm_name']}, "
                   f"{e['segment_size']}-byte segments"],
        ["key", f"id {e['key_id']}, {source}"],
        ["file id", e["file_id"]],
        ["parts", f"header envelope {e['header_envelope_size']}, FlatBuffer envelope "
                  f"{e['flatbuffer_envelope_size']}, binary region {e['binary_region_size']} "
                  "bytes"],
        ["clear digest", digest],
        ["opened", "yes: header and FlatBuffer authenticated" if e["opened"] else "no"],
    ] + _v2_rows(e)


def _v2_rows(e: dict[str, Any]) -> list[list[str]]:
    """Recipients (version 2) and the original's digest (once opened)."""
    rows = []
    if e.get("recipient_slots"):
        listed = ", ".join(f"{r['key_id']} ({r['type']})" for r in e["recipients"])
        rows.append(["recipients", f"{listed}; {len(e['recipients'])} of "
                                   f"{e['recipient_slots']} slots used"])
    if e.get("licence_required"):
        rows.append(["licence", f"required, signed by {e['licence_key']}"])
    if e.get("original_sha256"):
        rows.append(["original", f"sha256 {e['original_sha256']}, {e['original_size']} bytes "
                                 "(decrypt gives it back byte for byte)"])
    return rows


def _module_text(m: report.ModuleInfo | None) -> str:
    if m is None:
        return "none"
    if not m.name and not m.size:
        return "empty entry (0 bytes)"  # what `model_tool --kernel_remove` leaves
    return f"{m.name or '(no name)'}, {m.size} bytes at {m.offset}"


# ---------------------------------------------------------------- nets, weights, layout


def _nets(nets: list[report.NetInfo]) -> None:
    dynamic = sum(n.dynamic for n in nets)
    out.print()
    _line(f"  nets: {len(nets)} ({len(nets) - dynamic} static, {dynamic} dynamic)", "bold")
    for i, n in enumerate(nets):
        kind = "dynamic" if n.dynamic else "static"
        stages = _n(len(n.stages), "stage")
        _styled((f"  net {i}: ", ""), (n.name, "bold"),
                (f"  {kind}, addr mode {n.addr_mode} ({n.addr_mode_name}), {stages}", ""))
        for s in n.stages:
            weights = (f"weights #{s.coeff.region}" + (" (encrypted)" if s.coeff.encrypted else "")
                       if s.coeff else "no weights")
            _line(f"    stage {s.index}: core num {s.core_num}, {_n(s.subnets, 'subnet')}, "
                  f"{weights}")
            # model_tool marks input dims that are maxima: "[max:1, max:64]"
            rows = ([_io_row("input", t, "max:" if s.max_input_shapes else "") for t in s.inputs]
                    + [_io_row("output", t, "") for t in s.outputs])
            for line in _columns(rows, 6):
                _line(line)


def _io_row(direction: str, t: report.TensorInfo, prefix: str) -> list[str]:
    shape = "[" + ", ".join(f"{prefix}{d}" for d in t.shape) + "]"
    return [direction, t.name, shape, t.dtype, f"scale {t.scale:g}", f"zero point {t.zero_point}"]


def _weights(regions: list[report.CoeffRegionInfo]) -> None:
    total = sum(c.size for c in regions)
    encrypted = sum(c.encrypted for c in regions)
    out.print()
    _line(f"  weights: {_n(len(regions), 'coeff region')}, {total} bytes"
          + (f", {encrypted} encrypted" if encrypted else ""), "bold")
    if not regions:
        return
    rows = [["#", "size", "offset", "stored", "used by"]]
    for c in regions:
        stored = f"encrypted ({c.stored_size}-byte envelope)" if c.encrypted else "plain"
        rows.append([f"#{c.index}", str(c.size), str(c.offset), stored, ", ".join(c.used_by)])
    lines = _columns(rows, 4, right=(1, 2))
    _line(lines[0], "dim")
    for c, line in zip(regions, lines[1:], strict=True):
        _line(line)
        _line(f"{' ' * 8}sha256 {c.sha256 or '(no check_code in the file)'}", "dim")


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _layout(r: report.FileReport) -> None:
    out.print()
    _line(f"  layout: {_n(len(r.layout), 'part')}", "bold")
    rows = [["offset", "end", "size", "kind", "what"]]
    rows += [[str(p.offset), str(p.offset + p.size), str(p.size), p.kind, p.label]
             for p in r.layout]
    lines = _columns(rows, 4, right=(0, 1, 2))
    _line(lines[0], "dim")
    for line in lines[1:]:
        _line(line)
    total = r.layout_sum
    if total == r.size:
        _styled((f"    sum of the parts: {total} bytes = file size ", ""), ("OK", "green"))
    else:
        _styled((f"    sum of the parts: {total} bytes, file size {r.size} ", ""),
                ("MISMATCH", "bold red"))


# ---------------------------------------------------------------- several files


def _comparison(c: report.Comparison, paths: list[str]) -> None:
    """The verdict, the files by number, and which file has which weight region."""
    _styled((f"weights of the {len(paths)} files: ", "bold"),
            (c.weights.replace("_", " "), _VERDICT_STYLE[c.weights]))
    reasons = {nc["path"]: nc["reason"] for nc in c.not_compared}
    number = {}
    for i, p in enumerate(paths, 1):
        number.setdefault(p, str(i))
        why = f"  (not compared: {reasons[p]})" if p in reasons else ""
        _line(f"  file {i}  {p}{why}")
    if c.weights == "unknown" and c.visible_weights is not None:
        among = ", ".join(str(i) for i, p in enumerate(paths, 1) if p not in reasons)
        _line(f"  among files {among}: {c.visible_weights.replace('_', ' ')}")
    verdict = c.visible_weights or c.weights
    if verdict == "identical":
        _line(f"  the same {_n(len(c.regions), 'coeff region')} (SHA-256 and size) in each")
    elif c.regions:
        rows = [["sha256", "size", "in files"]]
        rows += [[r.sha256 or "(no check_code)", str(r.size),
                  ", ".join(number[p] for p in dict.fromkeys(r.files)) if len(r.files) > 1
                  else f"{number[r.files[0]]} only"] for r in c.regions]
        lines = _columns(rows, 4, right=(1,))
        _line(lines[0], "dim")
        for line in lines[1:]:
            _line(line)
