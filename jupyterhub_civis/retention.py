"""Which stored results to evict (pure; no I/O).

One rule for every result store of the bundle (the server's query cache and the
Hub service): expired results go first, then the least recently used until the
total fits. A pinned result is never chosen, even if the budget cannot be met
without it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    result_id: str
    size: int
    created: float
    last_access: float
    pinned: bool


def choose_evictions(
    entries: Iterable[Candidate], *, max_bytes: int | None, max_age: float | None, now: float
) -> list[str]:
    """The ids to evict so that unpinned results are younger than ``max_age`` seconds
    and the total size is within ``max_bytes``. ``None`` means no limit; callers map
    their "0 = unlimited" settings to ``None``."""
    chosen: list[str] = []
    remaining = []
    for e in entries:
        if not e.pinned and max_age is not None and now - e.created > max_age:
            chosen.append(e.result_id)
        else:
            remaining.append(e)
    if max_bytes is not None:
        total = sum(e.size for e in remaining)
        unpinned = sorted(
            (e for e in remaining if not e.pinned), key=lambda e: (e.last_access, e.created)
        )
        for e in unpinned:
            if total <= max_bytes:
                break
            chosen.append(e.result_id)
            total -= e.size
    return chosen
