"""Who viewed or copied a share and when, written off the response path.

A view used to wait for its own audit transaction (on SQLite one fsync each, and
one writer at a time): a hundred viewers at once queued behind each other's
commits. ``AuditLog.record`` only queues the event, stamped with the time of the
view; one writer commits everything queued so far in a single transaction
(group commit), then whatever arrived meanwhile. Readers of the audit call
``flush()`` first, so the owner's pages and API always show every view this
replica has answered; other replicas see it once its batch commits (milliseconds).
``close()`` at shutdown writes what is left. A failed batch is logged and kept for
the next round, never dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
import time

log = logging.getLogger("jupyterhub_civis.service")


class AuditLog:
    def __init__(self, write_many, run):
        """``write_many(events)`` commits a list of ``(share_id, user, action, number,
        at)`` in one transaction (blocking; ``run`` runs it in the I/O pool)."""
        self._write_many = write_many
        self._run = run
        self._pending: list[tuple] = []
        self._writer: asyncio.Task | None = None

    def record(self, share_id: str, user: str, action: str, number: int) -> None:
        """Queue one event (at this moment) and make sure a writer is on its way."""
        self._pending.append((share_id, user, action, number, time.time()))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._run(self._write_many, batch)
            except Exception:
                log.exception("audit: %d event(s) not written yet; retrying", len(batch))
                self._pending[:0] = batch
                await asyncio.sleep(1)

    async def flush(self) -> None:
        """Return once every event queued before this call is committed."""
        while self._pending or (self._writer is not None and not self._writer.done()):
            if self._writer is None or self._writer.done():
                self._writer = asyncio.get_running_loop().create_task(self._write())
            await asyncio.shield(self._writer)

    async def close(self, timeout: float = 10) -> None:
        """Write what is queued (at shutdown); give up after ``timeout`` seconds, saying so."""
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except TimeoutError:
            log.error("audit: %d event(s) lost at shutdown (database unreachable)", len(self._pending))
