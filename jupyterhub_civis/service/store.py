"""The durable store: SQLAlchemy metadata + fsspec blobs.

Protocol of a put (works the same with several replicas on one database):

1. ``begin_upload`` records an ``Upload`` row (id chosen here, owner from the
   caller's Hub identity) and opens the blob ``<blob_url>/<id>.arrow``;
2. chunks are appended as they arrive; ``heartbeat`` is refreshed while they do;
3. ``commit_upload`` closes (and, on local disks, fsyncs) the blob, then in ONE
   transaction deletes the ``Upload`` row and inserts the ``Result`` row.

Only ``Result`` rows are ever served, so a result is visible only once its blob
is complete and its row committed. An upload that dies (client gone, replica
SIGKILLed) leaves an ``Upload`` row whose heartbeat goes stale and perhaps a
partial blob: ``cleanup`` deletes both, and any blob with neither row.

Every method is blocking; the tornado app calls them from a thread pool.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass, field

import fsspec
import fsspec.implementations.local
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from jupyterhub_civis.protocol import valid_result_id
from jupyterhub_civis.retention import Candidate, choose_evictions
from jupyterhub_civis.service import policy
from jupyterhub_civis.service.blob_upload import BlobUpload
from jupyterhub_civis.service.engine import make_engine, private_dir
from jupyterhub_civis.service.migrations import upgrade
from jupyterhub_civis.service.models import Pin, Result, Upload

SUFFIX = ".arrow"
log = logging.getLogger("jupyterhub_civis.service")


class NotFound(Exception):
    """Missing, or not the caller's: the two are never distinguished."""


class Pinned(Exception):
    pass


class UploadLost(Exception):
    """The upload was declared stale and cleaned up before it could commit."""


@dataclass(frozen=True)
class Room:
    """What ``make_room`` achieved: whether the bytes fit, what the owner keeps stored
    (and how much of it is pinned), and which results it evicted."""

    ok: bool
    used: int
    pinned: int
    evicted: list[str]


class TooManyPins(Exception):
    """A result holds ``policy.MAX_PINS_PER_RESULT`` pins already."""


@dataclass
class ResultInfo:
    id: str
    owner: str
    key: str
    sql: str
    connection: str
    rows: int
    size: int
    created: float
    last_access: float
    #: [{"ref": notebook, "server": named server ("" = default)}], by ref
    pinned_by: list[dict] = field(default_factory=list)

    @property
    def pins(self) -> list[str]:
        return [pin["ref"] for pin in self.pinned_by]

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d.pop("owner")
        d["pins"] = self.pins
        return d


class DurableStore:
    def __init__(
        self,
        db_url: str,
        blob_url: str,
        *,
        storage_options: dict | None = None,
        max_total_bytes: int = 0,
        max_age: float = 0,
        upload_stale_after: float = 300,
        heartbeat_interval: float = 10,
    ):
        self.engine = make_engine(db_url)
        upgrade(self.engine)
        self.session = sessionmaker(self.engine, expire_on_commit=False)
        self.fs, self.root = fsspec.core.url_to_fs(blob_url, **(storage_options or {}))
        self.root = self.root.rstrip("/")
        if self.blobs_are_local:
            private_dir(self.root)
        else:
            try:
                self.fs.makedirs(self.root, exist_ok=True)
            except Exception:  # e.g. a bucket that exists but that we may not create
                log.debug("could not create %s", self.root, exc_info=True)
        self.max_total_bytes = max_total_bytes
        self.max_age = max_age
        self.upload_stale_after = upload_stale_after
        self.heartbeat_interval = heartbeat_interval

    # -- blobs
    def blob_path(self, result_id: str) -> str:
        if not valid_result_id(result_id):  # never build a path from anything else
            raise ValueError("invalid result id")
        return f"{self.root}/{result_id}{SUFFIX}"

    def _delete_blob(self, result_id: str) -> None:
        try:
            self.fs.rm(self.blob_path(result_id))
        except FileNotFoundError:
            pass

    # -- uploads
    def begin_upload(self, owner: str) -> BlobUpload:
        upload_id = uuid.uuid4().hex
        now = time.time()
        with self.session.begin() as s:
            s.add(Upload(id=upload_id, owner=owner, started=now, heartbeat=now))
        try:
            return BlobUpload(self, upload_id, owner)
        except BaseException:
            self.forget_upload(upload_id)
            raise

    def heartbeat(self, upload_id: str) -> None:
        with self.session.begin() as s:
            s.execute(sa.update(Upload).where(Upload.id == upload_id).values(heartbeat=time.time()))

    def forget_upload(self, upload_id: str, stale_before: float | None = None) -> bool:
        """Drop an upload that never became a result: its row, then its blob.

        With ``stale_before`` (cleanup), only while its heartbeat is still older than
        that, decided in the same statement that deletes the row: an upload that
        committed (or reported) since cleanup listed it keeps its blob. A crash
        between the two steps leaves a blob of nobody's, which cleanup sweeps."""
        stmt = sa.delete(Upload).where(Upload.id == upload_id)
        if stale_before is not None:
            stmt = stmt.where(Upload.heartbeat < stale_before)
        with self.session.begin() as s:
            gone = s.execute(stmt).rowcount
        if stale_before is not None and gone != 1:
            return False
        self._delete_blob(upload_id)
        return True

    def commit_upload(
        self,
        upload: BlobUpload,
        *,
        key: str,
        sql: str,
        connection: str,
        rows: int,
        pins: list[str] = (),
        server: str = "",
    ) -> ResultInfo:
        """Make the upload a result; ``pins`` (notebook refs, in named server ``server``)
        are recorded in the same transaction, so eviction can never take the result
        before its notebooks pin it."""
        upload.close()
        now = time.time()
        with self.session.begin() as s:
            gone = s.execute(sa.delete(Upload).where(Upload.id == upload.id)).rowcount
            if gone != 1:
                raise UploadLost(upload.id)
            row = Result(
                id=upload.id,
                owner=upload.owner,
                key=key,
                sql=policy.sql_excerpt(sql),
                connection=connection,
                rows=rows,
                size=upload.size,
                created=now,
                last_access=now,
            )
            s.add(row)
            s.flush()  # the result row first: pins reference it
            pinned_by = [{"ref": ref, "server": server} for ref in sorted(set(pins))]
            s.add_all(Pin(result_id=upload.id, created=now, **pin) for pin in pinned_by)
        return self._info(row, pinned_by)

    # -- reads
    def _info(self, row: Result, pinned_by: list[dict]) -> ResultInfo:
        return ResultInfo(
            row.id,
            row.owner,
            row.key,
            row.sql,
            row.connection,
            row.rows,
            row.size,
            row.created,
            row.last_access,
            sorted(pinned_by, key=lambda pin: pin["ref"]),
        )

    def _owned(self, s: Session, owner: str | None, result_id: str, admin=False) -> Result:
        if not valid_result_id(result_id):
            raise NotFound()
        row = s.get(Result, result_id)
        if row is None or not policy.may_read(row.owner, owner, admin):
            raise NotFound()
        return row

    def _pins(self, s: Session, ids: list[str]) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {i: [] for i in ids}
        if ids:
            query = sa.select(Pin.result_id, Pin.ref, Pin.server).where(Pin.result_id.in_(ids))
            for rid, ref, server in s.execute(query):
                out[rid].append({"ref": ref, "server": server})
        return out

    def get(
        self, owner: str | None, result_id: str, *, touch: bool = True, admin: bool = False
    ) -> ResultInfo:
        with self.session.begin() as s:
            row = self._owned(s, owner, result_id, admin)
            if touch:
                row.last_access = time.time()
            return self._info(row, self._pins(s, [row.id])[row.id])

    def touch(self, result_id: str) -> None:
        """Mark a result recently used (eviction's LRU order)."""
        with self.session.begin() as s:
            s.execute(
                sa.update(Result).where(Result.id == result_id).values(last_access=time.time())
            )

    def open_blob(self, result_id: str):
        return self.fs.open(self.blob_path(result_id), "rb")

    @property
    def blobs_are_local(self) -> bool:
        """Whether blobs are files on this machine's disks (what a same-host handoff needs)."""
        return isinstance(self.fs, fsspec.implementations.local.LocalFileSystem)

    def open_local_blob(self, result_id: str) -> int:
        """A read-only file descriptor of a committed blob on a local disk."""
        return os.open(self.blob_path(result_id), os.O_RDONLY | os.O_CLOEXEC)

    def list(
        self, owner: str, key: str | None = None, limit: int | None = None
    ) -> list[ResultInfo]:
        with self.session() as s:
            q = sa.select(Result).where(Result.owner == owner)
            if key is not None:
                q = q.where(Result.key == key)
            q = q.order_by(Result.created.desc())
            if limit:
                q = q.limit(limit)
            rows = list(s.scalars(q))
            pins = self._pins(s, [r.id for r in rows])
            return [self._info(r, pins[r.id]) for r in rows]

    # -- pins / delete
    def pin(
        self, owner: str | None, result_id: str, ref: str, admin=False, server: str = ""
    ) -> ResultInfo:
        """Pin (again) from notebook ``ref`` in named server ``server``; a result holds at
        most ``policy.MAX_PINS_PER_RESULT`` pins (``TooManyPins``)."""
        with self.session.begin() as s:
            self._owned(s, owner, result_id, admin)
            existing = s.get(Pin, (result_id, ref))
            if existing is not None:
                existing.server = server
            else:
                held = s.scalar(
                    sa.select(sa.func.count()).select_from(Pin).where(Pin.result_id == result_id)
                )
                if held >= policy.MAX_PINS_PER_RESULT:
                    raise TooManyPins()
                s.add(Pin(result_id=result_id, ref=ref, server=server, created=time.time()))
        return self.get(owner, result_id, touch=False, admin=admin)

    def unpin(self, owner: str | None, result_id: str, ref: str, admin=False) -> ResultInfo:
        with self.session.begin() as s:
            self._owned(s, owner, result_id, admin)
            s.execute(sa.delete(Pin).where((Pin.result_id == result_id) & (Pin.ref == ref)))
        return self.get(owner, result_id, touch=False, admin=admin)

    def delete(self, owner: str | None, result_id: str, admin: bool = False) -> None:
        with self.session.begin() as s:
            row = self._owned(s, owner, result_id, admin)
            if s.execute(sa.select(Pin.ref).where(Pin.result_id == result_id)).first():
                raise Pinned()
            s.delete(row)
        self._delete_blob(result_id)

    # -- retention and cleanup
    def _candidates(self, owner: str | None = None) -> list[Candidate]:
        """Every committed result (or ``owner``'s) as the retention rule sees it."""
        query = sa.select(Result.id, Result.owner, Result.size, Result.created, Result.last_access)
        if owner is not None:
            query = query.where(Result.owner == owner)
        pins = sa.select(Pin.result_id).distinct()
        if owner is not None:
            pins = pins.join(Result, Result.id == Pin.result_id).where(Result.owner == owner)
        with self.session() as s:
            pinned = set(s.scalars(pins))
            return [
                Candidate(r.id, r.size, r.created, r.last_access, r.id in pinned, r.owner)
                for r in s.execute(query)
            ]

    def _evict(self, victims: list[str]) -> list[str]:
        evicted = []
        for rid in victims:
            with self.session.begin() as s:
                # re-check under the delete: a pin made meanwhile (any replica) wins
                n = s.execute(
                    sa.delete(Result).where(
                        (Result.id == rid)
                        & ~sa.exists(sa.select(Pin.ref).where(Pin.result_id == rid))
                    )
                ).rowcount
            if n:
                self._delete_blob(rid)
                evicted.append(rid)
        return evicted

    def evict(self) -> list[str]:
        """Apply the size/age budget over all users (``retention``: the largest user's
        least recently used results first); pinned results are never evicted."""
        if not (self.max_total_bytes or self.max_age):
            return []
        victims = choose_evictions(
            self._candidates(),
            max_bytes=self.max_total_bytes or None,
            max_age=self.max_age or None,
            now=time.time(),
        )
        return self._evict(victims)

    def make_room(self, owner: str, needed: int, budget: int | None) -> Room:
        """Evict ``owner``'s own least recently used unpinned results until ``needed``
        more bytes fit in the owner's ``budget`` (None: no budget)."""
        if budget is None:
            return Room(True, 0, 0, [])
        entries = self._candidates(owner)
        evicted = []
        if needed <= budget:
            victims = choose_evictions(entries, max_bytes=budget - needed, max_age=None, now=0)
            evicted = self._evict(victims)
        kept = [e for e in entries if e.result_id not in set(evicted)]
        used = sum(e.size for e in kept)
        pinned = sum(e.size for e in kept if e.pinned)
        return Room(used + needed <= budget, used, pinned, evicted)

    def cleanup(self) -> list[str]:
        """Delete stale uploads and blobs that belong to no committed result or live upload."""
        now = time.time()
        with self.session() as s:
            uploads = list(s.execute(sa.select(Upload.id, Upload.heartbeat)))
        stale = policy.stale_uploads(uploads, now=now, stale_after=self.upload_stale_after)
        cutoff = now - self.upload_stale_after
        removed = [uid for uid in stale if self.forget_upload(uid, stale_before=cutoff)]
        try:
            names = self.fs.ls(self.root, detail=False, refresh=True)
        except TypeError:
            names = self.fs.ls(self.root, detail=False)
        except FileNotFoundError:
            names = []
        blob_ids = []
        for name in names:
            base = name.rstrip("/").rsplit("/", 1)[-1]
            if base.endswith(SUFFIX) and valid_result_id(base[: -len(SUFFIX)]):
                blob_ids.append(base[: -len(SUFFIX)])
        if blob_ids:
            with self.session() as s:
                known = set(s.scalars(sa.select(Result.id).where(Result.id.in_(blob_ids))))
                known |= set(s.scalars(sa.select(Upload.id).where(Upload.id.in_(blob_ids))))
            for rid in blob_ids:
                if rid not in known:
                    self._delete_blob(rid)
                    removed.append(rid)
        return removed

    def blob_exists(self, result_id: str) -> bool:
        try:
            self.fs.invalidate_cache()
        except Exception:
            pass
        return self.fs.exists(self.blob_path(result_id))

    def stats(self) -> dict:
        with self.session() as s:
            count, size = s.execute(
                sa.select(sa.func.count(Result.id), sa.func.coalesce(sa.func.sum(Result.size), 0))
            ).one()
            pinned = s.scalar(sa.select(sa.func.count(sa.distinct(Pin.result_id))))
            uploads = s.scalar(sa.select(sa.func.count(Upload.id)))
        return {"results": count, "bytes": int(size), "pinned": pinned, "uploads": uploads}

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        try:
            self.fs.ls(self.root, detail=False)
        except FileNotFoundError:  # an object-store prefix exists only once it holds a blob
            self.fs.ls(self.fs._parent(self.root), detail=False)

    def close(self) -> None:
        self.engine.dispose()
