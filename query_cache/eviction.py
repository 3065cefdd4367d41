"""Which stored results to evict (pure; no I/O).

Budget: total bytes and maximum age. Expired results go first, then the least
recently used until the total fits. Pinned results are never chosen.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    result_id: str
    size: int
    created: float
    last_access: float
    pinned: bool


def choose_evictions(
    entries: list[Candidate], *, max_bytes: int | None, max_age: float | None, now: float
) -> list[str]:
    chosen: list[str] = []
    remaining = []
    for e in entries:
        if not e.pinned and max_age is not None and now - e.created > max_age:
            chosen.append(e.result_id)
        else:
            remaining.append(e)
    if max_bytes is not None:
        total = sum(e.size for e in remaining)
        for e in sorted((e for e in remaining if not e.pinned), key=lambda e: e.last_access):
            if total <= max_bytes:
                break
            chosen.append(e.result_id)
            total -= e.size
    return chosen
