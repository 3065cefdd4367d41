"""Cache modes and the decision what to serve (pure; no I/O).

- ``reproducible``: if the notebook pins a result for the key, serve it and do
  not contact the warehouse; otherwise run, store and pin.
- ``refresh``: always run, store, and record the result in the notebook.
- ``max_age=N`` (seconds, with either mode): reuse a stored result for the key
  that is not older than N seconds.

A notebook-level default lives in the notebook metadata
(``metadata.jupyterhub_civis.deliverable``: ``analysis`` -> reproducible,
``report`` -> refresh, or an explicit ``metadata.jupyterhub_civis.query_mode``);
each call may override it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jupyterhub_civis.errors import InvalidInput

REPRODUCIBLE = "reproducible"
REFRESH = "refresh"
MODES = (REPRODUCIBLE, REFRESH)
DELIVERABLE_MODES = {"analysis": REPRODUCIBLE, "report": REFRESH}


def validate_mode(mode: Any, field: str = "mode") -> str | None:
    if mode is None or mode == "":
        return None
    if mode not in MODES:
        raise InvalidInput(field, f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    return mode


def validate_deliverable(value: Any) -> str:
    if value not in DELIVERABLE_MODES:
        raise InvalidInput(
            "deliverable",
            "use 'analysis' (re-runs serve the results pinned in the notebook) or "
            "'report' (every run queries the warehouse)",
        )
    return value


def validate_max_age(max_age: Any) -> float | None:
    if max_age is None:
        return None
    if isinstance(max_age, bool) or not isinstance(max_age, (int, float)) or max_age < 0:
        raise InvalidInput("max_age", "must be a number of seconds >= 0")
    return float(max_age)


def notebook_default_mode(notebook_metadata: dict | None) -> str | None:
    """The default mode a notebook declares in its metadata, if any."""
    civis = (notebook_metadata or {}).get("jupyterhub_civis") or {}
    if not isinstance(civis, dict):
        return None
    explicit = civis.get("query_mode")
    if explicit in MODES:
        return explicit
    return DELIVERABLE_MODES.get(civis.get("deliverable"))


def resolve_mode(call_mode: str | None, notebook_mode: str | None, server_default: str) -> str:
    """Call override > notebook default > server default."""
    return call_mode or notebook_mode or server_default


@dataclass(frozen=True)
class Decision:
    action: str  # "pinned" | "reuse" | "run"
    result_id: str | None = None


def decide(
    mode: str,
    *,
    pinned_result_id: str | None,
    pinned_available: bool,
    latest_result_id: str | None,
    latest_age: float | None,
    max_age: float | None,
) -> Decision:
    """What to serve for one query.

    ``pinned_available`` says whether the store still holds the pinned result;
    a reproducible query whose pin is gone must not silently re-run (the
    caller turns ``"missing-pin"`` into a clear error).
    """
    if mode == REPRODUCIBLE and pinned_result_id:
        if pinned_available:
            return Decision("pinned", pinned_result_id)
        return Decision("missing-pin", pinned_result_id)
    if (
        max_age is not None
        and latest_result_id
        and latest_age is not None
        and latest_age <= max_age
    ):
        return Decision("reuse", latest_result_id)
    return Decision("run")
