"""The result-store interface the query manager talks to.

``ResultStore``: ``put`` (store a stream of Arrow record batches atomically),
``get`` / ``latest`` (find a stored result), ``pin`` / ``unpin`` (protect a
result a notebook depends on) and ``evict`` (apply the size/age budget). Every
method may block (disk, network): the manager calls them from worker threads.

Implementations: ``local_store.LocalStore`` (a folder on the server's disk),
``service_store.ServiceStore`` (the Hub service) and ``tiered_store.TieredStore``
(a local hot tier over the service). The query-cache extension builds the one
``QueryCache.store_class`` names with ``from_extension``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pyarrow as pa


class ResultTooLarge(Exception):
    pass


@dataclass(frozen=True)
class StoredResult:
    result_id: str
    key: str
    rows: int
    size: int
    created: float
    path: str | None  # a local Arrow IPC file, when the store has one


class ResultStore(abc.ABC):
    @abc.abstractmethod
    def put(
        self,
        key: str,
        schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        *,
        max_bytes: int | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        sql: str = "",
        connection: str = "",
        pins: Iterable[str] = (),
    ) -> StoredResult:
        """Store the batches under ``key`` atomically; raise on any failure, leaving nothing.

        ``sql`` and ``connection`` (the connection's name) describe the result in
        listings such as the service's "My queries" page; stores may ignore them.
        ``pins``: notebooks that pin the result from the start (recorded with it, so
        eviction never sees it unpinned).
        """

    @abc.abstractmethod
    def open_reader(self, result: StoredResult) -> pa.RecordBatchFileReader | pa.RecordBatchReader:
        """Read a stored result's record batches."""

    @abc.abstractmethod
    def get(self, result_id: str) -> StoredResult | None:
        """The stored result, or None; marks it recently used."""

    @abc.abstractmethod
    def latest(self, key: str) -> StoredResult | None:
        """The newest stored result for ``key`` (its metadata: ``get`` it to read it)."""

    def exists(self, result_id: str) -> bool:
        """Whether the store has the result, without fetching or touching it."""
        return self.get(result_id) is not None

    @abc.abstractmethod
    def pin(self, result_id: str, owner: str) -> None:
        """Protect a result from eviction on behalf of ``owner`` (a notebook)."""

    @abc.abstractmethod
    def unpin(self, result_id: str, owner: str) -> None: ...

    @abc.abstractmethod
    def evict(self) -> list[str]:
        """Apply the budget; return the evicted result ids."""

    @classmethod
    def from_extension(cls, extension) -> ResultStore:
        """The store a query-cache server extension (``QueryCache``) configures:
        ``extension.store_dir``, ``max_store_bytes``, ``max_store_age``,
        ``service_url``, and ``extension`` as the traitlets parent. A store class
        named by ``QueryCache.store_class`` implements it."""
        raise NotImplementedError(f"{cls.__name__} cannot be made by the query cache extension")
