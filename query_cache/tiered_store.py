"""``TieredStore``: a server-local hot tier over the Hub service's durable store.

What the query cache uses under JupyterHub (when ``$CIVIS_SERVICE_URL`` is set):

- ``put`` writes the result into the hot tier's folder as an Arrow IPC file,
  uploads that file to the service as it is, and commits it locally under the
  id the service gave it — so the id a notebook pins names the same result in
  every server of the user.
- ``get`` serves a hot-tier hit from the local file (memory-mapped by the
  kernel); a hot-tier miss downloads the service's copy into the hot tier
  first (one download per result at a time in this server).
- ``latest`` asks the service, so a result stored by another server counts.
- ``pin``/``unpin`` go to both tiers; ``evict`` applies the hot tier's budget
  (the service applies its own).

If the service cannot be reached, queries keep working on the hot tier alone
(logged as a warning): a result stored then is known to this server only.
"""

from __future__ import annotations

import logging
import threading
import uuid

import requests

from jupyterhub_civis.query_cache.local_store import LocalStore
from jupyterhub_civis.query_cache.service_store import ServiceError, ServiceStore
from jupyterhub_civis.query_cache.store import ResultStore, StoredResult

_SERVICE_DOWN = (ServiceError, requests.RequestException)


class TieredStore(ResultStore):
    def __init__(self, hot: LocalStore, durable: ServiceStore, log: logging.Logger | None = None):
        self.hot = hot
        self.durable = durable
        self.log = log or logging.getLogger(__name__)
        self._fetch_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    @classmethod
    def from_extension(cls, extension) -> TieredStore:
        return cls(
            LocalStore.from_extension(extension),
            ServiceStore.from_extension(extension),
            log=extension.log,
        )

    def _service_failed(self, action: str, error: Exception) -> None:
        self.log.warning("civis query cache: the result service failed to %s: %s", action, error)

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
        with self.hot.new_file() as pending:
            pending.write_batches(schema, batches, max_bytes=max_bytes, on_progress=on_progress)
            pending.sync()  # the service may adopt this very file (a hard link) as durable
            try:
                info = self.durable.put_file(
                    key, pending.path, pending.rows, sql=sql, connection=connection, pins=pins
                )
            except _SERVICE_DOWN as e:
                self._service_failed("store a result (kept in this server only)", e)
                return pending.commit(uuid.uuid4().hex, key, pins=pins)
            return pending.commit(info.result_id, key, created=info.created, pins=pins)

    def open_reader(self, result):
        if result.path:
            return self.hot.open_reader(result)
        return self.durable.open_reader(result)

    def get(self, result_id):
        return self.hot.get(result_id) or self._fetch(result_id)

    def _fetch(self, result_id: str) -> StoredResult | None:
        with self._locks_guard:
            lock = self._fetch_locks.setdefault(result_id, threading.Lock())
        try:
            with lock:
                fetched = self.hot.get(result_id)  # another caller may have just fetched it
                if fetched is not None:
                    return fetched
                with self.hot.new_file() as pending:
                    info = self.durable.download_into(result_id, pending)
                    if info is None:
                        return None
                    return pending.commit(
                        result_id, info.key, created=info.created, durable_elsewhere=True
                    )
        except _SERVICE_DOWN as e:
            self._service_failed(f"serve result {result_id}", e)
            return None
        finally:
            with self._locks_guard:
                if not lock.locked():
                    self._fetch_locks.pop(result_id, None)

    def latest(self, key):
        local = self.hot.latest(key)
        try:
            remote = self.durable.latest(key)
        except _SERVICE_DOWN as e:
            self._service_failed("look up a result", e)
            return local
        if remote is None or (local is not None and local.created >= remote.created):
            return local
        return self.hot.get(remote.result_id) or remote  # remote: metadata only; get() fetches

    def exists(self, result_id):
        if self.hot.exists(result_id):
            return True
        try:
            return self.durable.get(result_id) is not None
        except _SERVICE_DOWN as e:
            self._service_failed("look up a result", e)
            return False

    def pin(self, result_id, owner):
        self.hot.pin(result_id, owner)
        self._on_service("pin", result_id, owner)

    def unpin(self, result_id, owner):
        self.hot.unpin(result_id, owner)
        self._on_service("unpin", result_id, owner)

    def _on_service(self, action, result_id, owner):
        try:
            getattr(self.durable, action)(result_id, owner)
        except ServiceError as e:
            if e.status != 404:  # 404: a result this server stored while the service was down
                self._service_failed(action, e)
        except requests.RequestException as e:
            self._service_failed(action, e)

    def evict(self):
        return self.hot.evict()
