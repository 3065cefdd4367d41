"""Which statements a PostgreSQL miss may run without describing them first."""

from __future__ import annotations

import threading
from collections import OrderedDict


class PlainStatements:
    """Statements whose description (per resolved connection, settings and parameter
    types) needed no casts: a miss runs them without describing them first, which
    saves the warehouse a parse and the run two round trips. Should such a result
    need casts after all (its tables changed since), the run fails rather than
    return undecoded bytes or run the statement twice, and the statement is
    forgotten: the next run describes it. Only short statements are remembered
    (where a describe weighs; and memory stays small)."""

    max_chars = 4096

    def __init__(self, size: int = 1024):
        self.size = size
        self._keys: OrderedDict[tuple, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: tuple) -> bool:
        with self._lock:
            if key in self._keys:
                self._keys.move_to_end(key)
                return True
            return False

    def add(self, key: tuple) -> None:
        with self._lock:
            self._keys[key] = None
            self._keys.move_to_end(key)
            while len(self._keys) > self.size:
                self._keys.popitem(last=False)

    def discard(self, key: tuple) -> None:
        with self._lock:
            self._keys.pop(key, None)
