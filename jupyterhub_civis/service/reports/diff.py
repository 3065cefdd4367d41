"""Which code cells' outputs differ between two runs (pure: two nbformat dicts in, rows out).

Compared as text — streams, ``text/plain`` and errors — so the compare page can list
them escaped, next to the two sandboxed renderings; rich outputs (HTML, images) are
compared by their plain-text fallback.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CellChange:
    cell: int  # 1-based, among code cells
    source: str
    before: str
    after: str


def _text(output: dict) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        text = output.get("text", "")
    elif kind == "error":
        text = f"{output.get('ename', '')}: {output.get('evalue', '')}"
    else:
        text = (output.get("data") or {}).get("text/plain", "")
    return "".join(text) if isinstance(text, list) else str(text)


def _cells(nb: dict) -> list[tuple[str, str]]:
    out = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            out.append((source, "".join(_text(o) for o in cell.get("outputs", []))))
    return out


def changed_cells(before: dict, after: dict) -> list[CellChange]:
    """Code cells (by position) whose text output differs; a cell only one run has counts."""
    old, new = _cells(before), _cells(after)
    changes = []
    for i in range(max(len(old), len(new))):
        o_src, o_out = old[i] if i < len(old) else ("", "")
        n_src, n_out = new[i] if i < len(new) else ("", "")
        if o_out != n_out:
            changes.append(CellChange(i + 1, n_src or o_src, o_out, n_out))
    return changes
