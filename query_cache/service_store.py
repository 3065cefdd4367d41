"""``ServiceStore``: the ``ResultStore`` interface backed by the civis Hub service.

The durable tier under JupyterHub: results live in the service (per Hub user,
shared by all of the user's servers, surviving servers and restarts). Nothing is
held in memory whole: ``put`` spools the Arrow IPC stream to a temporary file
(counting rows) and streams that file up; ``open_reader`` reads the response
body as a stream. ``TieredStore`` uses ``put_file`` and ``download_into``,
which move a hot tier's Arrow IPC *files* as byte copies.

Authentication is the server's ``$JUPYTERHUB_API_TOKEN`` (its scopes must include
``access:services!service=civis``; ``declare_service`` in the hub config does
that); the owner of every result is the Hub user that token belongs to.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable

import pyarrow as pa
import requests
from traitlets import Float, Unicode, default
from traitlets.config import LoggingConfigurable

from jupyterhub_civis import envvars
from jupyterhub_civis.protocol import (
    ARROW_FILE,
    ARROW_FILE_PREAMBLE,
    ARROW_PREFIX_BYTES,
    ARROW_STREAM,
    RESULT_HEADER,
    HandoffRequest,
    UploadHeader,
    stored_media_type,
    valid_result_id,
)
from jupyterhub_civis.query_cache.store import ResultStore, ResultTooLarge, StoredResult

COPY_CHUNK = 4 << 20


class ServiceError(Exception):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class _TraitsAndABCMeta(type(LoggingConfigurable), type(ResultStore)):
    """A configurable that implements an abstract interface needs both metaclasses."""


class ServiceStore(LoggingConfigurable, ResultStore, metaclass=_TraitsAndABCMeta):
    """The client of the civis service's results API (``c.ServiceStore.<trait>``)."""

    url = Unicode(
        help="""The civis service's URL including its prefix, e.g.
        ``http://127.0.0.1:8000/services/civis/``.

        Default: $CIVIS_SERVICE_URL, which ``declare_service`` in the hub config
        gives every server.""",
    ).tag(config=True)

    @default("url")
    def _default_url(self):
        return os.environ.get(envvars.SERVICE_URL, "")

    token = Unicode(
        help="""The Hub token the service identifies this server's user by; it needs the
        scope ``access:services!service=civis``. Default: $JUPYTERHUB_API_TOKEN.""",
    ).tag(config=True)

    @default("token")
    def _default_token(self):
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    handoff_socket = Unicode(
        help="""The service's same-host handoff socket (a Unix socket path), tried before
        HTTP when a result is fetched into the hot tier; empty: HTTP only.
        Default: $CIVIS_SERVICE_HANDOFF_SOCKET.""",
    ).tag(config=True)

    @default("handoff_socket")
    def _default_handoff_socket(self):
        return os.environ.get(envvars.SERVICE_HANDOFF_SOCKET, "")

    timeout = Float(
        300,
        help="Seconds to wait for the service to answer (connect and each read); "
        "an upload or download may take longer in total.",
    ).tag(config=True)

    server_name = Unicode(
        help="""The named server this store runs in, recorded with its pins so that
        "My queries" can say which server's notebook holds a result ("": the
        default server). Default: $JUPYTERHUB_SERVER_NAME.""",
    ).tag(config=True)

    @default("server_name")
    def _default_server_name(self):
        return os.environ.get("JUPYTERHUB_SERVER_NAME", "")

    connection = Unicode(
        "", help="The connection name recorded with results whose caller names none."
    ).tag(config=True)

    spool_dir = Unicode(
        None,
        allow_none=True,
        help="Folder for the temporary file a streamed ``put`` is spooled to before "
        "upload. Default: the system's temporary folder.",
    ).tag(config=True)

    def __init__(self, url: str | None = None, token: str | None = None, **kwargs):
        """``ServiceStore(url, token)`` or keyword traits; unset ones take their defaults."""
        given = {"url": url, "token": token}
        super().__init__(**{k: v for k, v in given.items() if v}, **kwargs)
        if not self.url:
            raise ValueError(f"ServiceStore needs a url or ${envvars.SERVICE_URL}")
        self.base = self.url.rstrip("/") + "/"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {self.token}"

    @classmethod
    def from_extension(cls, extension) -> ServiceStore:
        return cls(extension.service_url, parent=extension)

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
            raise ServiceError(f"civis service: {r.status_code} {message}", r.status_code)
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
        connection: str = "",
        pins: Iterable[str] = (),
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
            return self._upload(spool, ARROW_STREAM, key, rows, sql, connection, pins)

    def put_file(
        self,
        key: str,
        path: str,
        rows: int,
        *,
        sql: str = "",
        connection: str = "",
        pins: Iterable[str] = (),
    ) -> StoredResult:
        """Upload a complete Arrow IPC file as it is (no re-encoding)."""
        with open(path, "rb") as f:
            return self._upload(f, ARROW_FILE, key, rows, sql, connection, pins)

    def _upload(self, body, media_type, key, rows, sql, connection, pins=()) -> StoredResult:
        header = UploadHeader(
            key=key,
            sql=sql,
            connection=connection or self.connection,
            rows=rows,
            pins=sorted(set(pins)),
            server=self.server_name,
        )
        r = self.http.post(  # a file body: sent in blocks with its Content-Length
            self._url("api/results"),
            data=body,
            headers={RESULT_HEADER: header.header_value(), "Content-Type": media_type},
            timeout=self.timeout,
        )
        return self._result(self._check(r).json())

    def _open_body(self, result_id: str) -> requests.Response | None:
        if not valid_result_id(result_id):  # nothing the service never hands out is sent
            return None
        r = self.http.get(self._url(f"api/results/{result_id}"), stream=True, timeout=self.timeout)
        if r.status_code == 404:
            r.close()
            return None
        self._check(r)
        r.raw.decode_content = True
        return r

    def open_reader(self, result: StoredResult) -> pa.RecordBatchReader:
        r = self._open_body(result.result_id)
        if r is None:
            raise ServiceError("civis service: 404 result not found", 404)
        if r.headers.get("Content-Type") == ARROW_FILE:
            r.raw.read(ARROW_FILE_PREAMBLE)
        return pa.ipc.open_stream(pa.PythonFile(r.raw, mode="r"))

    def download_into(self, result_id: str, pending) -> StoredResult | None:
        """Fetch a result into a hot tier's ``PendingFile`` (a byte copy when the
        service holds an Arrow IPC file); ``None`` if the service has no such result
        for this user. Raises ``ServiceError`` if the body is not a complete file."""
        if self.handoff_socket:
            try:
                handed = self._handoff(result_id)
            except OSError as e:
                self.log.debug("same-host handoff unavailable (%s); downloading", e)
            else:
                if handed is None:
                    return None
                info, fd = handed
                try:
                    if stored_media_type(os.pread(fd, ARROW_PREFIX_BYTES, 0)) == ARROW_FILE:
                        pending.adopt(fd, info.rows)
                    else:  # a blob another client uploaded as a stream: re-encoded here
                        with os.fdopen(os.dup(fd), "rb") as blob:
                            blob.seek(0)
                            reader = pa.ipc.open_stream(blob)
                            pending.write_batches(reader.schema, reader)
                finally:
                    os.close(fd)
                self._check_complete(result_id, pending)
                return info
        r = self._open_body(result_id)
        if r is None:
            return None
        with r:
            info = self._result(json.loads(r.headers[RESULT_HEADER]))
            if r.headers.get("Content-Type") == ARROW_FILE:
                with open(pending.path, "wb") as f:
                    shutil.copyfileobj(r.raw, f, COPY_CHUNK)
                pending.wrote(info.rows)
            else:
                reader = pa.ipc.open_stream(pa.PythonFile(r.raw, mode="r"))
                pending.write_batches(reader.schema, reader)
        self._check_complete(result_id, pending)
        return info

    @staticmethod
    def _check_complete(result_id, pending) -> None:
        try:
            with pa.memory_map(pending.path, "r") as source:
                pa.ipc.open_file(source)  # reads the footer: a torn copy fails here
        except (pa.ArrowInvalid, OSError) as e:
            raise ServiceError(f"civis service: result {result_id} arrived incomplete: {e}") from e

    def _handoff(self, result_id: str) -> tuple[StoredResult, int] | None:
        """Ask the service's same-host socket for the result's open file: (info, fd),
        None if the service has no such result for this user; OSError if unavailable."""
        if not valid_result_id(result_id):  # nothing the service never hands out is sent
            return None
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            sock.connect(self.handoff_socket)
            sock.sendall(HandoffRequest(token=self.token, id=result_id).line())
            data, fds = b"", []
            while not data.endswith(b"\n"):
                chunk, more_fds, _flags, _addr = socket.recv_fds(sock, 65536, 1)
                if not chunk:
                    break
                data += chunk
                fds += more_fds
        reply = json.loads(data or b"{}")
        status = reply.get("status")
        if status == 200 and len(fds) == 1:
            return self._result(reply["result"]), fds[0]
        for fd in fds:
            os.close(fd)
        if status == 404:
            return None
        raise ConnectionError(f"handoff refused: {reply.get('message', reply)}")

    def get(self, result_id: str) -> StoredResult | None:
        if not valid_result_id(result_id):  # nothing the service never hands out is sent
            return None
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
                json={"ref": owner, "server": self.server_name},
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
