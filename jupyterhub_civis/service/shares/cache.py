"""Recently opened shares, in memory, each kept with the stamp it was read at.

A viewer's three requests (page, rendering, first image) each decide access from
the share's row, so reading a share is the service's hottest query. What is cached
stays right because every change to a share moves a stamp forward:

- a share's version list, stamped with its latest version number: a version never
  changes once published and a share only ever gains versions. Reading the list is
  worth saving: on SQLite, a version's columns after its notebook bytes are reached
  by walking those bytes' overflow pages (megabytes per read);
- a whole ``ShareInfo``, stamped with the share row's ``updated``, which every
  change (audience, expiry, title, revocation, a new version) moves strictly
  forward (``store.touch``). A lookup then costs one primary-key read of that
  column, on every replica, so a change made on another replica is seen at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class StampedCache(Generic[T]):
    """Values by share id, each valid for exactly the stamp it was stored with."""

    def __init__(self, max_shares: int = 4096):
        self.max_shares = max_shares
        self._items: OrderedDict[str, tuple[Hashable, T]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, share_id: str, stamp: Hashable) -> T | None:
        """The value kept for ``share_id`` if it was stored at ``stamp``; else None."""
        with self._lock:
            item = self._items.get(share_id)
            if item is None or item[0] != stamp:
                return None
            self._items.move_to_end(share_id)
            return item[1]

    def put(self, share_id: str, stamp: Hashable, value: T) -> None:
        with self._lock:
            self._items[share_id] = (stamp, value)
            self._items.move_to_end(share_id)
            while len(self._items) > self.max_shares:
                self._items.popitem(last=False)
