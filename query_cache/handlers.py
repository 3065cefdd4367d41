"""HTTP handlers: parse, authorise, delegate to the QueryManager, serialise.

Under ``{base_url}civis/queries``:

- ``POST   /civis/queries``                 submit -> 201 + status JSON (has ``id``);
                                            ``"wait": S`` answers once done or after S s;
                                            closing the connection meanwhile cancels
- ``GET    /civis/queries``                 this server's running and recent queries
- ``GET    /civis/queries/<id>``            status; ``?wait=S&version=V`` waits up to S
                                            seconds for a change after version V;
                                            ``&final=1``: for the query to end
                                            (these two answers carry a result of at
                                            most 32 KiB as ``inline``: base64 of its
                                            Arrow IPC file, once)
- ``GET    /civis/queries/<id>/result``     Arrow IPC stream; ``?format=path`` gives the
                                            stored Arrow IPC file's path instead
- ``POST   /civis/queries/<id>/cancel``     cancel (also ``DELETE /civis/queries/<id>``)
- ``GET    /civis/queries/status``          the live status page (HTML)
- ``POST   /civis/notebook``                ``{"kernel_id", "deliverable"}``: the kernel's
                                            notebook is an ``analysis`` or a ``report``
"""

from __future__ import annotations

import asyncio
import json
import string

import pyarrow as pa
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from tornado import web

from jupyterhub_civis.errors import InvalidInput
from jupyterhub_civis.protocol import EXECUTE_PATH
from jupyterhub_civis.query_cache.status_page import STATUS_PAGE

AUTH_RESOURCE = "civis_queries"
ARROW_STREAM = "application/vnd.apache.arrow.stream"


class _Base(APIHandler):
    auth_resource = AUTH_RESOURCE

    def initialize(self, manager):
        self.manager = manager

    def _record(self, query_id):
        record = self.manager.records.get(query_id)
        if record is None:
            raise web.HTTPError(404, f"no query {query_id} on this server")
        return record

    def _bad_request(self, field: str, message: str):
        self.set_status(400)
        self.finish({"message": f"{field}: {message}", "field": field})

    def _json_body(self) -> dict:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise InvalidInput("body", "must be a JSON object")
        return body


class QueriesHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self):
        records = [r.to_json() for r in reversed(self.manager.records.values())]
        self.finish({"queries": records})

    waiting = None  # the query this request waits for; its client leaving cancels it

    @web.authenticated
    @authorized
    async def post(self):
        try:
            body = self._json_body()
            wait = body.pop("wait", None)
            if wait is not None and (
                isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= 5
            ):
                raise InvalidInput("wait", "seconds to wait for the result, 0 to 5")
            record = await self.manager.submit(body)
        except InvalidInput as e:
            return self._bad_request(e.field, e.message)
        if wait:
            # a short query is done in this answer: no poll round trip. The client
            # has no id to cancel by yet, so an interrupt closes the connection
            self.waiting = record
            await self.manager.wait_final(record, float(wait))
            self.waiting = None
        self.set_status(201)
        self.finish(record.answer_json() if wait else record.to_json())

    def on_connection_close(self):
        if self.waiting is not None:
            self.cancelling = asyncio.ensure_future(self.manager.cancel(self.waiting))
        super().on_connection_close()


class NotebookHandler(_Base):
    @web.authenticated
    @authorized
    async def post(self):
        try:
            self.finish(await self.manager.set_deliverable(self._json_body()))
        except InvalidInput as e:
            return self._bad_request(e.field, e.message)


class QueryHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self, query_id):
        record = self._record(query_id)
        wait = self.get_query_argument("wait", None)
        version = self.get_query_argument("version", None)
        if wait is not None:
            try:
                timeout = min(max(float(wait), 0.0), 60.0)
                since = int(version) if version is not None else None
            except ValueError:
                return self._bad_request("wait", "wait and version must be numbers")
            if self.get_query_argument("final", "") == "1":
                # the kernel client: one answer for a short query, not one per state
                await self.manager.wait_final(record, timeout)
                return self.finish(record.answer_json())
            await self.manager.wait(record, since, timeout)
        self.finish(record.to_json())

    @web.authenticated
    @authorized
    async def delete(self, query_id):
        record = self._record(query_id)
        await self.manager.cancel(record)
        self.finish(record.to_json())


class CancelHandler(_Base):
    @web.authenticated
    @authorized
    async def post(self, query_id):
        record = self._record(query_id)
        await self.manager.cancel(record)
        self.finish(record.to_json())


class _ChunkSink:
    """A write-only file object collecting Arrow stream bytes between flushes."""

    def __init__(self):
        self.chunks: list[bytes] = []
        self.closed = False

    def write(self, data):
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self):
        pass

    def close(self):
        self.closed = True

    def drain(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


def _batches(reader):
    if isinstance(reader, pa.RecordBatchFileReader):
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)
    else:
        yield from reader


class ResultHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self, query_id):
        record = self._record(query_id)
        if record.state != "done" or record.result is None:
            self.set_status(409)
            return self.finish(
                {
                    "message": f"query {query_id} is {record.state}, not done",
                    "state": record.state,
                    "error": record.error,
                }
            )
        stored = record.result
        fmt = self.get_query_argument("format", "stream")
        if fmt == "path":
            if not stored.path:
                self.set_status(404)
                return self.finish({"message": "this store keeps no local file; use format=stream"})
            return self.finish({"path": stored.path, "rows": stored.rows, "bytes": stored.size})
        if fmt != "stream":
            return self._bad_request("format", "use 'stream' (Arrow IPC stream) or 'path'")
        reader = self.manager.store.open_reader(stored)
        self.set_header("Content-Type", ARROW_STREAM)
        sink = _ChunkSink()
        writer = pa.ipc.new_stream(pa.PythonFile(sink, mode="w"), reader.schema)
        for batch in _batches(reader):
            writer.write_batch(batch)
            self.write(sink.drain())
            await self.flush()
        writer.close()
        self.write(sink.drain())
        self.finish()


def _js(value: str) -> str:
    """A JSON string literal safe inside an inline <script>."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class StatusPageHandler(JupyterHandler):
    auth_resource = AUTH_RESOURCE

    def initialize(self, my_queries_url: str = ""):
        self.my_queries_url = my_queries_url

    @web.authenticated
    @authorized
    def get(self):
        token = self.xsrf_token
        page = string.Template(STATUS_PAGE).substitute(
            api_url=_js(self.base_url + "civis/queries"),
            runs_url=_js(self.base_url + EXECUTE_PATH),
            xsrf=_js(token.decode() if isinstance(token, bytes) else token),
            my_queries=_js(self.my_queries_url),
        )
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(page)


def handlers(manager, my_queries_url: str = "") -> list[tuple]:
    """``my_queries_url``: the civis service's "My queries" page (browser path), if any."""
    kw = {"manager": manager}
    qid = r"([0-9a-f]{32})"
    return [
        (r"/civis/queries", QueriesHandler, kw),
        (r"/civis/notebook", NotebookHandler, kw),
        (r"/civis/queries/status", StatusPageHandler, {"my_queries_url": my_queries_url}),
        (rf"/civis/queries/{qid}", QueryHandler, kw),
        (rf"/civis/queries/{qid}/result", ResultHandler, kw),
        (rf"/civis/queries/{qid}/cancel", CancelHandler, kw),
    ]
