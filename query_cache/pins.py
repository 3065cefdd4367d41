"""Query pins inside notebooks (pure; no I/O).

A notebook carries ``metadata.jupyterhub_civis.queries``: cache key -> the
result it showed (``result_id``, a SQL excerpt, the time, the row count, the
connection name and the mode). The pre-save hook merges the pins recorded for
that notebook into the model, next to the other ``jupyterhub_civis`` keys
(such as ``environment``), without clobbering them.
"""

from __future__ import annotations

from typing import Any

EXCERPT_CHARS = 200


def excerpt(sql: str, limit: int = EXCERPT_CHARS) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def pins_from_metadata(notebook_metadata: dict | None) -> dict[str, dict]:
    civis = (notebook_metadata or {}).get("jupyterhub_civis") or {}
    queries = civis.get("queries") if isinstance(civis, dict) else None
    if not isinstance(queries, dict):
        return {}
    return {
        k: v
        for k, v in queries.items()
        if isinstance(v, dict) and isinstance(v.get("result_id"), str)
    }


def merge_deliverable(model: dict, deliverable: str | None) -> bool:
    """Write ``metadata.jupyterhub_civis.deliverable`` into a notebook model in place."""
    if not deliverable or model.get("type") != "notebook":
        return False
    content = model.get("content")
    if not isinstance(content, dict):
        return False
    civis = content.setdefault("metadata", {}).setdefault("jupyterhub_civis", {})
    civis["deliverable"] = deliverable
    return True


def merge_pins(model: dict, pins: dict[str, dict[str, Any]]) -> bool:
    """Write ``pins`` into a notebook contents model in place; True if it changed."""
    if not pins or model.get("type") != "notebook":
        return False
    content = model.get("content")
    if not isinstance(content, dict):
        return False
    metadata = content.setdefault("metadata", {})
    civis = metadata.setdefault("jupyterhub_civis", {})
    queries = civis.setdefault("queries", {})
    queries.update(pins)
    return True
