"""Which stored results to evict (pure; no I/O).

One rule for every result store of the bundle (the server's query cache and the
Hub service): expired results go first, then — until the total fits — the least
recently used result of the owner who holds the most bytes, so one user's heavy
use evicts that user's results before anyone else's. A store with one owner
(the server's query cache) gets plain LRU. A pinned result is never chosen,
even if the budget cannot be met without it.
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
    owner: str = ""


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
        chosen += _largest_owner_first(remaining, max_bytes)
    return chosen


def _largest_owner_first(entries: list[Candidate], max_bytes: int) -> list[str]:
    total = sum(e.size for e in entries)
    held: dict[str, int] = {}
    queues: dict[str, list[Candidate]] = {}
    for e in entries:
        held[e.owner] = held.get(e.owner, 0) + e.size
        if not e.pinned:
            queues.setdefault(e.owner, []).append(e)
    for queue in queues.values():
        queue.sort(key=lambda e: (e.last_access, e.created), reverse=True)  # LRU last
    chosen = []
    while total > max_bytes and queues:
        owner = max(queues, key=lambda o: (held[o], -queues[o][-1].last_access))
        e = queues[owner].pop()
        if not queues[owner]:
            del queues[owner]
        chosen.append(e.result_id)
        total -= e.size
        held[owner] -= e.size
    return chosen
