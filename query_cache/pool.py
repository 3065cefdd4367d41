"""A small pool of warehouse sessions per resolved connection (thread-safe).

A miss used to open (and authenticate) a new warehouse connection every time;
for short queries that cost more than the query. ``SessionPool`` keeps up to
``max_idle`` idle sessions per key (the *resolved* connection: two servers,
or two ``${VAR}`` values, never share one). A session goes back to the pool
only from a run that finished cleanly, and only after ``reset`` succeeded on it
(a clean slate, and a health check); a cancelled or failed run discards its
session, so no later query inherits its state. The reset runs when the session
is given back — after the query's answer is on its way, not before the next
query — and a query that finds no idle session waits for one being given back
(``expect_return``) rather than open a new one. Sessions idle longer than
``idle_timeout`` seconds are closed (on the next pool call and by ``prune``,
which the server calls periodically).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any


class SessionPool:
    #: longest wait for a session being given back before opening a new one
    return_wait = 5.0

    def __init__(self, *, idle_timeout: float = 300.0, max_idle: int = 4):
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self._idle: dict[Hashable, list[tuple[float, Any, Callable[[Any], None]]]] = {}
        self._returning: dict[Hashable, int] = {}
        self._cond = threading.Condition()
        self.opened = 0  # sessions opened so far (tests and the benchmark read it)

    def acquire(self, key: Hashable, connect: Callable[[], Any]) -> tuple[Any, bool]:
        """An idle session for ``key`` (reset when it was given back), or one being
        given back, else a new one; and whether it was reused."""
        self.prune()
        deadline = time.monotonic() + self.return_wait
        with self._cond:
            while not self._idle.get(key) and self._returning.get(key):
                if not self._cond.wait(deadline - time.monotonic()):
                    break
            idle = self._idle.get(key)
            entry = idle.pop() if idle else None
        if entry is not None:
            return entry[1], True
        session = connect()
        self.opened += 1
        return session, False

    def expect_return(self, key: Hashable) -> None:
        """A session of ``key`` will be given back (``release`` or ``discard``) soon:
        callers of ``acquire`` wait for it instead of opening a new one."""
        with self._cond:
            self._returning[key] = self._returning.get(key, 0) + 1

    def release(
        self,
        key: Hashable,
        session: Any,
        reset: Callable[[Any], None],
        close: Callable[[Any], None],
        *,
        expected: bool = False,
    ) -> None:
        """Give back a session whose run finished cleanly: idle once ``reset``
        succeeded on it, else closed."""
        try:
            reset(session)
            clean = True
        except Exception:
            clean = False
        with self._cond:
            self._returned(key, expected)
            idle = self._idle.setdefault(key, [])
            if clean and self.idle_timeout > 0 and len(idle) < self.max_idle:
                idle.append((time.monotonic(), session, close))
                return
            if not idle:
                del self._idle[key]
        _quietly(close, session)

    def discard(
        self, key: Hashable, session: Any, close: Callable[[Any], None], *, expected=False
    ) -> None:
        """Close a session that must not be reused (its run failed or was cancelled)."""
        with self._cond:
            self._returned(key, expected)
        _quietly(close, session)

    def _returned(self, key, expected):
        if expected:
            left = self._returning.get(key, 0) - 1
            if left > 0:
                self._returning[key] = left
            else:
                self._returning.pop(key, None)
        self._cond.notify_all()

    def prune(self, now: float | None = None) -> int:
        """Close sessions idle for longer than ``idle_timeout``; how many were closed."""
        now = time.monotonic() if now is None else now
        expired = []
        with self._cond:
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
        with self._cond:
            return sum(len(v) for v in self._idle.values())

    def close(self) -> None:
        with self._cond:
            entries = [e for idle in self._idle.values() for e in idle]
            self._idle.clear()
            self._cond.notify_all()
        for _, session, close in entries:
            _quietly(close, session)


def _quietly(fn, arg):
    try:
        fn(arg)
    except Exception:
        pass
