"""One caller's query as the API, the status page and the client see it."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid

from jupyterhub_civis.query_cache import pins
from jupyterhub_civis.query_cache.store import StoredResult

QUEUED, RUNNING, FETCHING, STORING, DONE, FAILED, CANCELLED = (
    "queued",
    "running",
    "fetching",
    "storing",
    "done",
    "failed",
    "cancelled",
)
FINAL = (DONE, FAILED, CANCELLED)
#: a result file up to this size also travels in the answer to its kernel client
#: (no file to open on the kernel's side for a short query)
INLINE_MAX_BYTES = 32 << 10


def inline_bytes(stored: StoredResult) -> bytes | None:
    """A small stored result's Arrow IPC file bytes (read in a worker thread), or None."""
    if stored.path is None or stored.size > INLINE_MAX_BYTES:
        return None
    try:
        with open(stored.path, "rb") as f:
            data = f.read(INLINE_MAX_BYTES + 1)
    except OSError:
        return None
    return data if len(data) == stored.size else None


class QueryRecord:
    """One caller's query, as the API and the status page see it."""

    def __init__(self, *, sql, params, connection, mode, max_age, notebook, key):
        self.id = uuid.uuid4().hex
        self.sql, self.params, self.connection = sql, params, connection
        self.mode, self.max_age, self.notebook, self.key = mode, max_age, notebook, key
        self.submitted = time.time()
        self.finished: float | None = None
        self.state = QUEUED
        self.cache: str | None = None  # "hit" | "miss"
        self.shared = False  # joined an identical query already running
        self.rows = 0
        self.bytes = 0
        self.error: str | None = None
        self.sqlstate: str | None = None
        self.result: StoredResult | None = None
        self.run = None  # the manager's shared run, while one is attached
        self.inline: bytes | None = None  # a small result's bytes, until answered once
        self.version = 0
        self._event = asyncio.Event()

    def changed(self):
        self.version += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    def answer_json(self) -> dict:
        """``to_json`` for the kernel client waiting for this query: a small result
        comes along (base64 of its Arrow IPC file), once."""
        out = self.to_json()
        inline, self.inline = self.inline, None
        if inline is not None and self.state == DONE:
            out["inline"] = base64.b64encode(inline).decode()
        return out

    def to_json(self) -> dict:
        end = self.finished or time.time()
        return {
            "id": self.id,
            "sql": pins.excerpt(self.sql),
            "connection": self.connection,
            "mode": self.mode,
            "max_age": self.max_age,
            "notebook": self.notebook,
            "key": self.key,
            "state": self.state,
            "cache": self.cache,
            "shared": self.shared,
            "submitted": self.submitted,
            "elapsed": round(end - self.submitted, 3),
            "rows": self.rows,
            "bytes": self.bytes,
            "error": self.error,
            "sqlstate": self.sqlstate,
            "result_id": self.result.result_id if self.result else None,
            "result_path": self.result.path if self.result and self.state == DONE else None,
            "version": self.version,
        }


class LoopUpdates:
    """Updates a worker thread hands to the event loop, in order, with at most one
    wake-up of the loop pending: a short query's state changes reach the loop in
    one or two hand-offs instead of one each."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._pending: list = []
        self._lock = threading.Lock()

    def post(self, fn) -> None:
        with self._lock:
            self._pending.append(fn)
            if len(self._pending) > 1:
                return  # a wake-up is already on its way
        self.loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:
        with self._lock:
            fns, self._pending = self._pending, []
        for fn in fns:
            fn()
