"""Crash safety for ``LocalStore``: fsync helpers and how files are named while
they are not yet safe to trust.

A result file is written as ``.tmp-<pid>-<uuid>.arrow`` and renamed into place
only after it is fsynced; a copy that became visible before its fsync (one
fetched from the durable tier) is named by a ``.unsynced-<pid>-<result id>``
marker until the background fsync finishes. ``LocalStore.recover`` reads these
names: a temp file or marker whose writer process is gone is a crash's leftover.
A result written here is visible before its fsync too (a small query's answer
does not wait for the disk); its row in the ``unsynced`` table, committed in the
same SQLite transaction as the result's row, names it until the background fsync
of the file and the folder is done (see ``LocalStore._commit``).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
from collections.abc import Callable

TMP_PREFIX = ".tmp-"
UNSYNCED_PREFIX = ".unsynced-"  # + <pid>-<result id>: a visible copy not yet fsynced
SUFFIX = ".arrow"
# files this process committed and has yet to fsync (any LocalStore in it): a store
# reopened meanwhile in the same process must not take them for a dead writer's
SYNCING: set[str] = set()


class Flusher:
    """fsync a file being written in the background every ``step`` bytes, so the
    final fsync after the commit (needed for crash safety) has little left to do."""

    step = 32 << 20

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
        self.pending = None
        self.next_at = self.step
        self.pool = None

    def maybe_flush(self, written):
        if written < self.next_at or (self.pending is not None and not self.pending.done()):
            return
        self.next_at = written + self.step
        if self.pool is None:
            self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="civis-fsync")
        self.pending = self.pool.submit(os.fdatasync, self.fd)

    def close(self):
        """Without waiting for a flush still running (the result's final fsync, after
        its commit and off the response path, covers what it would have): its
        descriptor closes when it ends."""
        if self.pool is None:
            os.close(self.fd)
            return
        self.pending.add_done_callback(lambda _: os.close(self.fd))
        self.pool.shutdown(wait=False)


def fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def writer_alive(name: str, prefix: str = TMP_PREFIX) -> bool:
    """Whether the process named in a temp file or marker (``<prefix><pid>-…``) still runs."""
    try:
        pid = int(name[len(prefix) :].split("-", 1)[0])
    except ValueError:
        return False
    return pid_alive(pid)


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftovers from before a restart of this same pid cannot exist
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sync_and_unmark(path: str, marker: str) -> None:
    try:
        fsync_path(path)
    except FileNotFoundError:
        pass  # evicted meanwhile
    try:
        os.unlink(marker)
    except FileNotFoundError:
        pass


class Batcher:
    """One background thread that hands ``work`` every item queued since its last
    call, in order: committed results are made durable in batches (one folder fsync
    and one SQLite commit for many small results) instead of one thread wake-up,
    fsync and commit each, competing with the next query for the GIL."""

    def __init__(self, work: Callable[[list], None], name: str, log=None):
        self.work, self.name, self.log = work, name, log or logging.getLogger(__name__)
        self._items: list = []
        self._lock = threading.Lock()
        self._running = False
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def add(self, item) -> None:
        with self._lock:
            self._items.append(item)
            if self._running:
                return  # the drain loop picks it up
            self._running = True
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=self.name)
            self._pool.submit(self._drain)

    def _drain(self) -> None:
        while True:
            with self._lock:
                batch, self._items = self._items, []
                if not batch:
                    self._running = False
                    return
            try:
                self.work(batch)
            except Exception:  # what stays unsynced stays marked: recover() handles it
                self.log.exception("%s: background sync failed", self.name)
