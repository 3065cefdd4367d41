"""``LocalStore``: a result store in one folder of the server's disk.

Each result is an Arrow IPC *file* (memory-mappable by a kernel on the same
filesystem), with metadata in SQLite through SQLAlchemy. A result becomes
visible only after its file is complete and renamed into place *and* its row is
committed; a file not yet fsynced then is marked (an ``unsynced`` row in the
same commit) until the background sync is done. On open, temp files, files
without a committed row, rows without a file and dead writers' marked results
are removed. A crash at any point therefore leaves either no entry or a complete
one. Under JupyterHub it is the hot tier of a ``TieredStore``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import os
import sqlite3
import threading
import time
import uuid

import pyarrow as pa
import sqlalchemy as sa

from jupyterhub_civis.query_cache.local_durability import (  # noqa: F401 (re-exported)
    SUFFIX,
    SYNCING,
    TMP_PREFIX,
    UNSYNCED_PREFIX,
    Batcher,
    fsync_path,
    pid_alive,
    writer_alive,
)
from jupyterhub_civis.query_cache.pending_file import PendingFile
from jupyterhub_civis.query_cache.store import ResultStore, StoredResult
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
        self._db_path = os.path.join(self.directory, "metadata.sqlite")
        self._commit_db: sqlite3.Connection | None = None
        self.engine = sa.create_engine(
            "sqlite:///" + self._db_path,
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
        self._sync_batches = Batcher(self._sync_written, "civis-hot-sync", log)
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
            # BEGIN IMMEDIATE takes SQLite's write lock first, so recover() in
            # another process never sees the renamed file without its row
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO results (result_id, key, rows, size, created, last_access)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (result_id, key, pending.rows, size, created, now),
                )
                owners = [(result_id, owner) for owner in sorted(set(pins))]
                if owners:
                    db.executemany("INSERT INTO pins (result_id, owner) VALUES (?, ?)", owners)
                if unsynced:
                    SYNCING.add(self._path(result_id))
                    db.execute(
                        "INSERT INTO unsynced (result_id, pid) VALUES (?, ?)",
                        (result_id, os.getpid()),
                    )
                os.replace(pending.path, self._path(result_id))
                pending.renamed = True
        except sqlite3.IntegrityError:
            # another server sharing this folder stored the same durable result first
            existing = self.get(result_id)
            if existing is None:
                raise
            return existing
        # the file is fsynced (or marked until it is); the rename reaches the disk with
        # the background folder fsync: a power cut before it loses the entry, whose
        # row recover() then drops, never tears it
        self._sync_batches.add((result_id, unsynced))
        return StoredResult(result_id, key, pending.rows, size, created, self._path(result_id))

    def _writer(self) -> sqlite3.Connection:
        """The connection commits use (under ``_lock``): plain sqlite3, because
        SQLAlchemy's work per transaction cost more than a small result's commit."""
        if self._commit_db is None:
            self._commit_db = sqlite3.connect(
                self._db_path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._commit_db.execute("PRAGMA synchronous=NORMAL")  # as for the engine's
        return self._commit_db

    @contextlib.contextmanager
    def _transaction(self):
        """A write transaction (``BEGIN IMMEDIATE``) on the commit connection."""
        with self._lock:
            db = self._writer()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

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

    def _sync_written(self, batch: list[tuple[str, bool]]) -> None:
        """fsync the marked files of a batch of commits, then the folder (their renames);
        then their marks go."""
        marked = [rid for rid, unsynced in batch if unsynced]
        for rid in marked:
            try:
                fsync_path(self._path(rid))
            except FileNotFoundError:
                pass  # evicted meanwhile
        self._fsync_dir()  # the renames are on disk before the marks go
        if marked:
            with self._transaction() as db:
                db.executemany(
                    "DELETE FROM unsynced WHERE result_id = ?", [(rid,) for rid in marked]
                )
        for rid in marked:
            SYNCING.discard(self._path(rid))

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

    def _within_budget(self) -> bool:
        """One aggregate row instead of every row (eviction runs after every query)."""
        if self.max_total_bytes is None and self.max_age is None:
            return True
        c = results_table.c
        with self.engine.connect() as conn:
            total, oldest = conn.execute(
                sa.select(sa.func.sum(c.size), sa.func.min(c.created))
            ).one()
        if oldest is None:
            return True
        return (self.max_total_bytes is None or total <= self.max_total_bytes) and (
            self.max_age is None or time.time() - oldest <= self.max_age
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
        if self._within_budget():
            return []
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
