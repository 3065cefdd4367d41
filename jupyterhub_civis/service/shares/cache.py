"""The versions of recently opened shares, in memory.

A version never changes once published (its notebook, environment record and the
results it carries are fixed), and a share only ever gains versions. So a share's
version list read once stays right for as long as its latest version number is the
same, which the database answers from its primary-key index alone. Reading the list
itself is what is worth saving: on SQLite, a version's columns after its notebook
bytes are reached by walking those bytes' overflow pages (megabytes per view).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from jupyterhub_civis.service.shares.info import VersionInfo


class VersionCache:
    def __init__(self, max_shares: int = 4096):
        self.max_shares = max_shares
        self._items: OrderedDict[str, list[VersionInfo]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, share_id: str, latest: int) -> list[VersionInfo] | None:
        """The versions of ``share_id`` if they are cached up to ``latest`` exactly."""
        with self._lock:
            versions = self._items.get(share_id)
            if versions is None or (versions[-1].number if versions else 0) != latest:
                return None
            self._items.move_to_end(share_id)
            return versions

    def put(self, share_id: str, versions: list[VersionInfo]) -> None:
        with self._lock:
            self._items[share_id] = versions
            self._items.move_to_end(share_id)
            while len(self._items) > self.max_shares:
                self._items.popitem(last=False)
