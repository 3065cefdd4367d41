"""``ServiceStore``: the ``ResultStore`` interface backed by the civis Hub service.

The durable tier under JupyterHub: results live in the service (per Hub user,
shared by all of the user's servers, surviving servers and restarts). Nothing is
held in memory whole: ``put`` spools the Arrow IPC stream to a temporary file
(counting rows) and streams that file up; ``open_reader`` reads the response
body as a stream.

Authentication is the server's ``$JUPYTERHUB_API_TOKEN`` (its scopes must include
``access:services!service=civis``; ``declare_service`` in the hub config does
that); the owner of every result is the Hub user that token belongs to.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable

import pyarrow as pa
import requests

from jupyterhub_civis.query_cache.store import ResultStore, ResultTooLarge, StoredResult


class ServiceError(Exception):
    pass


class ServiceStore(ResultStore):
    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        connection: str = "",
        timeout: float = 300,
        spool_dir: str | None = None,
    ):
        """``base_url``: the service's URL including its prefix, e.g.
        ``http://127.0.0.1:8000/services/civis/`` (default: $CIVIS_SERVICE_URL)."""
        base_url = base_url or os.environ.get("CIVIS_SERVICE_URL", "")
        if not base_url:
            raise ValueError("ServiceStore needs base_url or $CIVIS_SERVICE_URL")
        self.base = base_url.rstrip("/") + "/"
        token = token or os.environ.get("JUPYTERHUB_API_TOKEN", "")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {token}"
        self.connection = connection
        self.timeout = timeout
        self.spool_dir = spool_dir

    def _url(self, path: str) -> str:
        return self.base + path

    @staticmethod
    def _result(info: dict) -> StoredResult:
        return StoredResult(
            info["id"], info["key"], info["rows"], info["size"], info["created"], None
        )

    def _check(self, r: requests.Response) -> requests.Response:
        if r.status_code >= 400:
            try:
                message = r.json().get("message", "")
            except ValueError:
                message = r.reason
            raise ServiceError(f"civis service: {r.status_code} {message}")
        return r

    def put(
        self,
        key: str,
        schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        *,
        max_bytes: int | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        sql: str = "",
    ) -> StoredResult:
        rows = 0
        with tempfile.TemporaryFile(dir=self.spool_dir) as spool:
            sink = pa.PythonFile(spool, mode="w")
            with pa.ipc.new_stream(sink, schema) as writer:
                for batch in batches:
                    writer.write_batch(batch)
                    rows += batch.num_rows
                    written = spool.tell()
                    if max_bytes is not None and written > max_bytes:
                        raise ResultTooLarge(max_bytes)
                    if on_progress:
                        on_progress(rows, written)
            spool.seek(0)
            meta = {"key": key, "sql": sql, "connection": self.connection, "rows": rows}

            r = self.http.post(  # a file body: sent in blocks with its Content-Length
                self._url("api/results"),
                data=spool,
                headers={
                    "X-Civis-Result": json.dumps(meta),
                    "Content-Type": "application/vnd.apache.arrow.stream",
                },
                timeout=self.timeout,
            )
        return self._result(self._check(r).json())

    def open_reader(self, result: StoredResult) -> pa.RecordBatchReader:
        r = self.http.get(
            self._url(f"api/results/{result.result_id}"), stream=True, timeout=self.timeout
        )
        self._check(r)
        r.raw.decode_content = True
        return pa.ipc.open_stream(pa.PythonFile(r.raw, mode="r"))

    def get(self, result_id: str) -> StoredResult | None:
        r = self.http.get(self._url(f"api/results/{result_id}/info"), timeout=self.timeout)
        if r.status_code == 404:
            return None
        return self._result(self._check(r).json())

    def latest(self, key: str) -> StoredResult | None:
        r = self.http.get(
            self._url("api/results"), params={"key": key, "limit": 1}, timeout=self.timeout
        )
        results = self._check(r).json()["results"]
        return self._result(results[0]) if results else None

    def pin(self, result_id: str, owner: str) -> None:
        self._check(
            self.http.put(
                self._url(f"api/results/{result_id}/pins"),
                json={"ref": owner},
                timeout=self.timeout,
            )
        )

    def unpin(self, result_id: str, owner: str) -> None:
        self._check(
            self.http.delete(
                self._url(f"api/results/{result_id}/pins"),
                params={"ref": owner},
                timeout=self.timeout,
            )
        )

    def evict(self) -> list[str]:
        """Retention is the service's (its size/age budget); nothing to do here."""
        return []
