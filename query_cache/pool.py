"""A small pool of warehouse sessions per resolved connection (thread-safe).

A miss used to open (and authenticate) a new warehouse connection every time;
for short queries that cost more than the query. ``SessionPool`` keeps up to
``max_idle`` idle sessions per key (the *resolved* connection: two servers,
or two ``${VAR}`` values, never share one). A session is handed out only
after ``reset`` succeeded on it (the reset doubles as the health check), and
is returned only by a run that finished cleanly: a cancelled or failed run
discards its session, so no later query inherits its state. Sessions idle
longer than ``idle_timeout`` seconds are closed (on the next pool call and by
``prune``, which the server calls periodically).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any


class SessionPool:
    def __init__(self, *, idle_timeout: float = 300.0, max_idle: int = 4):
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self._idle: dict[Hashable, list[tuple[float, Any, Callable[[Any], None]]]] = {}
        self._lock = threading.Lock()
        self.opened = 0  # sessions opened so far (tests and the benchmark read it)

    def acquire(
        self,
        key: Hashable,
        connect: Callable[[], Any],
        reset: Callable[[Any], None],
        close: Callable[[Any], None],
    ) -> Any:
        """An idle session for ``key`` that passed ``reset``, else a new one."""
        self.prune()
        while True:
            with self._lock:
                idle = self._idle.get(key)
                entry = idle.pop() if idle else None
            if entry is None:
                break
            session = entry[1]
            try:
                reset(session)
                return session
            except Exception:
                _quietly(close, session)
        session = connect()
        self.opened += 1
        return session

    def release(self, key: Hashable, session: Any, close: Callable[[Any], None]) -> None:
        """Give back a session whose run finished cleanly."""
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if self.idle_timeout > 0 and len(idle) < self.max_idle:
                idle.append((time.monotonic(), session, close))
                return
        _quietly(close, session)

    def prune(self, now: float | None = None) -> int:
        """Close sessions idle for longer than ``idle_timeout``; how many were closed."""
        now = time.monotonic() if now is None else now
        expired = []
        with self._lock:
            for key, idle in list(self._idle.items()):
                keep = [e for e in idle if now - e[0] <= self.idle_timeout]
                expired.extend(e for e in idle if now - e[0] > self.idle_timeout)
                if keep:
                    self._idle[key] = keep
                else:
                    del self._idle[key]
        for _, session, close in expired:
            _quietly(close, session)
        return len(expired)

    def idle_count(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._idle.values())

    def close(self) -> None:
        with self._lock:
            entries = [e for idle in self._idle.values() for e in idle]
            self._idle.clear()
        for _, session, close in entries:
            _quietly(close, session)


def _quietly(fn, arg):
    try:
        fn(arg)
    except Exception:
        pass
