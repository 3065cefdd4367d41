"""``PendingFile``: a result being written into a ``LocalStore`` folder, invisible
until its commit (how it is made durable: ``local_durability``)."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pyarrow as pa

from jupyterhub_civis.query_cache.local_durability import (
    SUFFIX,
    TMP_PREFIX,
    Flusher,
    fsync_path,
    sync_and_unmark,
)
from jupyterhub_civis.query_cache.store import ResultTooLarge, StoredResult

if TYPE_CHECKING:
    from jupyterhub_civis.query_cache.local_store import LocalStore


class PendingFile:
    """A result being written into a ``LocalStore``: invisible until ``commit``.

    Fill it with ``write_batches`` (encodes an Arrow IPC file) or by writing the
    bytes of a complete Arrow IPC file to ``path`` and calling ``wrote(rows)``.
    Leaving the ``with`` block without a commit deletes the temp file.
    """

    def __init__(self, store: LocalStore):
        self.store = store
        self.path = os.path.join(
            store.directory, f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}{SUFFIX}"
        )
        self.rows = 0
        self._synced = False
        self.renamed = False  # set by the store once the file is renamed into place

    def __enter__(self) -> PendingFile:
        return self

    def __exit__(self, *exc):
        if self.renamed:
            return  # nothing left at the temp path
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    #: a result whose batches hold at most this many bytes is encoded in memory and
    #: written with one system call (a short query's file costs one create and write)
    small_bytes = 1 << 20

    def write_batches(self, schema, batches, *, max_bytes=None, on_progress=None) -> None:
        held, held_rows, held_bytes = [], 0, 0
        batches = iter(batches)
        for batch in batches:
            held.append(batch)
            held_rows, held_bytes = held_rows + batch.num_rows, held_bytes + batch.nbytes
            if held_bytes > self.small_bytes:
                return self._stream(schema, itertools.chain(held, batches), max_bytes, on_progress)
            if on_progress:  # rows so far, and their size in memory
                on_progress(held_rows, held_bytes)
        self._write_small(schema, held, max_bytes)
        self.rows = held_rows

    def _write_small(self, schema, held, max_bytes) -> None:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, schema) as writer:
            for batch in held:
                writer.write_batch(batch)
        data = memoryview(sink.getvalue())
        if max_bytes is not None and len(data) > max_bytes:
            raise ResultTooLarge(max_bytes)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)

    def _stream(self, schema, batches, max_bytes, on_progress) -> None:
        flusher = Flusher(self.path)
        try:
            with pa.OSFile(self.path, "wb") as sink:
                with pa.ipc.new_file(sink, schema) as writer:
                    for batch in batches:
                        writer.write_batch(batch)
                        self.rows += batch.num_rows
                        written = sink.tell()
                        if max_bytes is not None and written > max_bytes:
                            raise ResultTooLarge(max_bytes)
                        flusher.maybe_flush(written)
                        if on_progress:
                            on_progress(self.rows, written)
        finally:
            flusher.close()

    def adopt(self, fd: int, rows: int) -> None:
        """Take a complete, durable and never-modified Arrow IPC file from an open
        descriptor (the service's same-host handoff): hard-link it when this folder is
        on the same filesystem and the kernel allows it (no copy, nothing to fsync),
        else copy it inside the kernel."""
        self.rows = rows
        try:
            # linkat(AT_SYMLINK_FOLLOW) through /proc/self/fd; os.link only asks for
            # that flag when given a directory descriptor
            proc_fds = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.link(str(fd), self.path, src_dir_fd=proc_fds, follow_symlinks=True)
            finally:
                os.close(proc_fds)
            self._synced = True
            return
        except OSError:
            pass
        size = os.fstat(fd).st_size
        with open(self.path, "wb") as out:
            offset = 0
            while offset < size:
                sent = os.sendfile(out.fileno(), fd, offset, size - offset)
                if sent == 0:
                    raise OSError(f"the handed-over file ended at {offset} of {size} bytes")
                offset += sent

    def sync(self) -> None:
        fsync_path(self.path)
        self._synced = True

    def wrote(self, rows: int) -> None:
        """The caller wrote a complete Arrow IPC file of ``rows`` rows to ``path``."""
        self.rows = rows

    def commit(
        self,
        result_id: str,
        key: str,
        created: float | None = None,
        *,
        durable_elsewhere: bool = False,
        pins: Iterable[str] = (),
    ) -> StoredResult:
        """Make the file visible as ``result_id``: a crash never leaves a committed
        row over a torn file. A file written here is fsynced in the background; until
        then a row in ``unsynced`` (same transaction) names it, and ``recover`` drops
        the result if this process died before the sync.

        ``durable_elsewhere``: the file is a copy of a result kept durably
        elsewhere (the Hub service). It becomes visible at once and is fsynced in
        the background; until then a marker names it, and ``recover`` drops it
        (to be fetched again) if this process died before the sync.
        """
        if self._synced:
            return self.store._commit(self, result_id, key, created, pins)
        if not durable_elsewhere:
            return self.store._commit(self, result_id, key, created, pins, unsynced=True)
        marker = self.store._mark_unsynced(result_id)
        try:
            result = self.store._commit(self, result_id, key, created, pins)
        except BaseException:
            os.unlink(marker)
            raise
        self.store._background(sync_and_unmark, result.path, marker)
        return result
