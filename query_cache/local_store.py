"""``LocalStore``: a result store in one folder of the server's disk.

Each result is an Arrow IPC *file* (memory-mappable by a kernel on the same
filesystem), with metadata in SQLite through SQLAlchemy. A result becomes
visible only after its file is complete, fsynced and renamed into place *and*
its row is committed; on open, temp files and files without a committed row are
deleted, rows without a file are dropped. A crash at any point therefore leaves
either no entry or a complete one. Under JupyterHub it is the hot tier of a
``TieredStore``.
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import os
import threading
import time
import uuid
from collections.abc import Iterable

import pyarrow as pa
import sqlalchemy as sa

from jupyterhub_civis.query_cache.local_durability import (  # noqa: F401 (re-exported)
    SUFFIX,
    SYNCING,
    TMP_PREFIX,
    UNSYNCED_PREFIX,
    Flusher,
    fsync_path,
    pid_alive,
    sync_and_unmark,
    writer_alive,
)
from jupyterhub_civis.query_cache.store import ResultStore, ResultTooLarge, StoredResult
from jupyterhub_civis.retention import Candidate, choose_evictions

_meta = sa.MetaData()
results_table = sa.Table(
    "results",
    _meta,
    sa.Column("result_id", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(64), nullable=False, index=True),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("last_access", sa.Float, nullable=False),
)
# results written here whose file is visible but not yet fsynced (row and file may be
# torn by a power cut): the same transaction that commits the result adds this row,
# the background fsync deletes it; recover() drops results whose writer died first
unsynced_table = sa.Table(
    "unsynced",
    _meta,
    sa.Column("result_id", sa.String(64), primary_key=True),
    sa.Column("pid", sa.Integer, nullable=False),
)
pins_table = sa.Table(
    "pins",
    _meta,
    sa.Column("result_id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(1024), primary_key=True),
)


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

    def __enter__(self) -> PendingFile:
        return self

    def __exit__(self, *exc):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def write_batches(self, schema, batches, *, max_bytes=None, on_progress=None) -> None:
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
            flusher.settle()  # the final fsync runs after commit, off the response path
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


class LocalStore(ResultStore):
    @classmethod
    def from_extension(cls, extension) -> LocalStore:
        return cls(
            extension.store_dir,
            max_total_bytes=extension.max_store_bytes or None,
            max_age=extension.max_store_age or None,
            log=extension.log,
        )

    def __init__(
        self,
        directory: str,
        *,
        max_total_bytes: int | None = None,
        max_age: float | None = None,
        log=None,
    ):
        self.directory = os.path.abspath(directory)
        self.max_total_bytes = max_total_bytes
        self.max_age = max_age
        self.log = log
        os.makedirs(self.directory, exist_ok=True)
        self.engine = sa.create_engine(
            "sqlite:///" + os.path.join(self.directory, "metadata.sqlite"),
            connect_args={"check_same_thread": False, "timeout": 30},
        )

        @sa.event.listens_for(self.engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a power cut may forget the newest commit, never tear one;
            # a forgotten result row leaves an orphan file that recover() deletes.
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        # a user's servers share the folder and may start at the same moment:
        # create_all's check-then-create would race without a file lock
        with open(os.path.join(self.directory, ".schema.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _meta.create_all(self.engine)
        self._lock = threading.RLock()
        self._syncer: concurrent.futures.ThreadPoolExecutor | None = None
        self.recover()

    # -- paths
    def _path(self, result_id: str) -> str:
        return os.path.join(self.directory, result_id + SUFFIX)

    def recover(self) -> None:
        """Remove what a crash may have left: temp files, files without rows, rows without files."""
        with self._lock, self.engine.begin() as conn:
            # take the write lock first: no other process can be between
            # "file renamed" and "row committed" while we look
            conn.execute(results_table.delete().where(sa.false()))
            known = {r.result_id for r in conn.execute(sa.select(results_table.c.result_id))}
            names = os.listdir(self.directory)
            unsynced = set()  # copies whose background fsync never finished: maybe torn
            for name in names:
                if name.startswith(UNSYNCED_PREFIX) and not writer_alive(name, UNSYNCED_PREFIX):
                    unsynced.add(name.split("-", 2)[2])
                    os.unlink(os.path.join(self.directory, name))
            for row in conn.execute(sa.select(unsynced_table)).all():
                if not pid_alive(row.pid) and self._path(row.result_id) not in SYNCING:
                    unsynced.add(row.result_id)
            if unsynced:
                for table in (results_table, pins_table, unsynced_table):
                    conn.execute(table.delete().where(table.c.result_id.in_(unsynced)))
                known -= unsynced
            on_disk = set()
            for name in names:
                full = os.path.join(self.directory, name)
                if name.startswith(UNSYNCED_PREFIX):
                    continue
                if name.startswith(TMP_PREFIX):
                    if not writer_alive(name):
                        os.unlink(full)
                elif name.endswith(SUFFIX):
                    rid = name[: -len(SUFFIX)]
                    if rid in known:
                        on_disk.add(rid)
                    else:
                        os.unlink(full)
            missing = known - on_disk
            if missing:
                conn.execute(results_table.delete().where(results_table.c.result_id.in_(missing)))

    # -- interface
    def put(
        self,
        key,
        schema,
        batches,
        *,
        max_bytes=None,
        on_progress=None,
        sql="",
        connection="",
        pins=(),
    ):
        with self.new_file() as pending:
            pending.write_batches(schema, batches, max_bytes=max_bytes, on_progress=on_progress)
            return pending.commit(uuid.uuid4().hex, key, pins=pins)

    def new_file(self) -> PendingFile:
        """A temp file in this store, committed under an id of the caller's choosing
        (the durable tier's id, for a tiered store) or discarded on exit."""
        return PendingFile(self)

    def _commit(
        self,
        pending: PendingFile,
        result_id: str,
        key: str,
        created: float | None,
        pins=(),
        *,
        unsynced: bool = False,
    ):
        size = os.path.getsize(pending.path)
        now = time.time()
        created = now if created is None else created
        try:
            with self._lock, self.engine.begin() as conn:
                # The INSERT takes SQLite's write lock first, so recover() in
                # another process never sees the renamed file without its row.
                conn.execute(
                    results_table.insert().values(
                        result_id=result_id,
                        key=key,
                        rows=pending.rows,
                        size=size,
                        created=created,
                        last_access=now,
                    )
                )
                for owner in sorted(set(pins)):
                    conn.execute(pins_table.insert().values(result_id=result_id, owner=owner))
                if unsynced:
                    SYNCING.add(self._path(result_id))
                    conn.execute(
                        unsynced_table.insert().values(result_id=result_id, pid=os.getpid())
                    )
                os.replace(pending.path, self._path(result_id))
        except sa.exc.IntegrityError:
            # another server sharing this folder stored the same durable result first
            existing = self.get(result_id)
            if existing is None:
                raise
            return existing
        if unsynced:
            self._background(self._sync_written, result_id)
        else:
            self._fsync_dir()
        return StoredResult(result_id, key, pending.rows, size, created, self._path(result_id))

    def open_reader(self, result):
        return pa.ipc.open_file(pa.memory_map(result.path, "r"))

    def _mark_unsynced(self, result_id: str) -> str:
        marker = os.path.join(self.directory, f"{UNSYNCED_PREFIX}{os.getpid()}-{result_id}")
        with open(marker, "w"):
            pass
        self._fsync_dir()  # the marker is on disk before the row can be
        return marker

    def _background(self, fn, *args) -> concurrent.futures.Future:
        with self._lock:
            if self._syncer is None:
                self._syncer = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix="civis-hot-sync"
                )
        return self._syncer.submit(fn, *args)

    def _sync_written(self, result_id: str) -> None:
        try:
            fsync_path(self._path(result_id))
        except FileNotFoundError:
            pass  # evicted meanwhile
        self._fsync_dir()  # the rename is on disk before the mark goes
        with self._lock, self.engine.begin() as conn:
            conn.execute(unsynced_table.delete().where(unsynced_table.c.result_id == result_id))
        SYNCING.discard(self._path(result_id))

    def _fsync_dir(self):
        fsync_path(self.directory)

    def _row_to_result(self, row) -> StoredResult:
        return StoredResult(
            row.result_id, row.key, row.rows, row.size, row.created, self._path(row.result_id)
        )

    def get(self, result_id):
        with self._lock, self.engine.begin() as conn:
            row = conn.execute(
                sa.select(results_table).where(results_table.c.result_id == result_id)
            ).first()
            if row is None:
                return None
            conn.execute(
                results_table.update()
                .where(results_table.c.result_id == result_id)
                .values(last_access=time.time())
            )
        return self._row_to_result(row)

    def latest(self, key):
        with self._lock, self.engine.connect() as conn:
            row = conn.execute(
                sa.select(results_table)
                .where(results_table.c.key == key)
                .order_by(results_table.c.created.desc())
                .limit(1)
            ).first()
        return self._row_to_result(row) if row else None

    def pin(self, result_id, owner):
        with self._lock, self.engine.begin() as conn:
            exists = conn.execute(
                sa.select(pins_table).where(
                    (pins_table.c.result_id == result_id) & (pins_table.c.owner == owner)
                )
            ).first()
            if not exists:
                conn.execute(pins_table.insert().values(result_id=result_id, owner=owner))

    def unpin(self, result_id, owner):
        with self._lock, self.engine.begin() as conn:
            conn.execute(
                pins_table.delete().where(
                    (pins_table.c.result_id == result_id) & (pins_table.c.owner == owner)
                )
            )

    def exists(self, result_id):
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(results_table.c.result_id).where(results_table.c.result_id == result_id)
            ).first()
        return row is not None

    def is_pinned(self, result_id) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    sa.select(pins_table).where(pins_table.c.result_id == result_id)
                ).first()
                is not None
            )

    def list(self) -> list[StoredResult]:
        with self.engine.connect() as conn:
            return [self._row_to_result(r) for r in conn.execute(sa.select(results_table))]

    def evict(self):
        with self._lock, self.engine.begin() as conn:
            pinned = {r.result_id for r in conn.execute(sa.select(pins_table.c.result_id))}
            entries = [
                Candidate(r.result_id, r.size, r.created, r.last_access, r.result_id in pinned)
                for r in conn.execute(sa.select(results_table))
            ]
            victims = choose_evictions(
                entries, max_bytes=self.max_total_bytes, max_age=self.max_age, now=time.time()
            )
            if victims:
                conn.execute(results_table.delete().where(results_table.c.result_id.in_(victims)))
        for rid in victims:
            try:
                os.unlink(self._path(rid))
            except FileNotFoundError:
                pass
        return victims
