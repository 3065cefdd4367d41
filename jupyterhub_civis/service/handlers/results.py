"""The results API: upload, list, read, describe, pin, unpin, delete.

- ``POST   api/results``                 body: an Arrow IPC stream or file (streamed);
  header ``X-Civis-Result`` (``protocol.UploadHeader``) → 201 + JSON
- ``GET    api/results[?key=&limit=&user=]``  the caller's results, newest first
- ``GET    api/results/<id>``            the body as stored (streamed)
- ``GET    api/results/<id>/info``       its metadata (JSON)
- ``DELETE api/results/<id>``            delete (409 while pinned)
- ``PUT    api/results/<id>/pins``       body ``protocol.PinRequest``; ``DELETE …/pins?ref=``
"""

from __future__ import annotations

import asyncio
import functools
import json

from tornado import web

from jupyterhub_civis import protocol
from jupyterhub_civis.protocol import RESULT_HEADER
from jupyterhub_civis.service import policy
from jupyterhub_civis.service.auth import current_groups
from jupyterhub_civis.service.handlers.base import APIHandler
from jupyterhub_civis.service.shares.grants import read_result, read_result_now
from jupyterhub_civis.service.store import NotFound, Pinned, TooManyPins, UploadLost

CHUNK = 1 << 20
#: pins a share holds on the results it carries (``shares.policy.pin_ref``)
SHARE_PIN = "share:"
RESULT_ID = r"([^/]+)"


#: A refused upload's body is read (and dropped) to its end before the refusal is sent,
#: as long as no more than this many bytes of it remain: a proxy in between (the hub's)
#: turns an answer that cuts a body off into a 503. A larger body, or a client that sent
#: ``Expect: 100-continue``, gets the answer at once.
DRAIN_LIMIT = 64 << 20


@web.stream_request_body
class ResultsHandler(APIHandler):
    upload = None
    committed = False
    _pending = None
    _received = 0
    _refusal: web.HTTPError | None = None  # answered once the body has been read
    _drained = 0

    async def prepare(self):
        await super().prepare()
        if self.request.method != "POST":
            return
        owner = self.require_user()
        header = self.request.headers.get(RESULT_HEADER)
        self._meta = self.parse(protocol.parse_upload_header, header)
        self._budget = self.settings["user_budget"](self.caller.groups)
        declared = self.request.headers.get("Content-Length")
        self._declared = int(declared) if declared is not None else None
        refusal = self._too_large(self._declared or 0)
        if refusal is None:
            room = await self.run(self.store.make_room, owner, self._declared or 0, self._budget)
            refusal = self._no_room(room, self._declared or 0)
        # tornado's own limit (a 400 that closes the connection) only past ours (a 413)
        # and a refused body's drain
        limit = self.settings["max_result_bytes"] + DRAIN_LIMIT + (1 << 20)
        self.request.connection.set_max_body_size(limit)
        if refusal is not None:
            if not self._answer_after_body(refusal):
                raise refusal
            return
        self.upload = await self.run(self.store.begin_upload, owner)

    def _too_large(self, size: int) -> web.HTTPError | None:
        refusal = policy.upload_refusal(
            size, max_result_bytes=self.settings["max_result_bytes"], budget=self._budget
        )
        return web.HTTPError(413, refusal) if refusal else None

    def _no_room(self, room, needed: int) -> web.HTTPError | None:
        if room.evicted:
            self.metrics.evictions.inc(len(room.evicted))
        if room.ok:
            return None
        message = policy.quota_refusal(
            used=room.used, pinned=room.pinned, needed=needed, budget=self._budget
        )
        return web.HTTPError(413, message)

    def _answer_after_body(self, refusal: web.HTTPError) -> bool:
        """Drop the upload; True if ``refusal`` waits until the rest of a small body is
        read (and dropped), False if it must be answered at once."""
        self._abort()
        remaining = None if self._declared is None else self._declared - self._received
        expects = self.request.headers.get("Expect", "").lower() == "100-continue"
        if expects or (remaining is not None and remaining > DRAIN_LIMIT):
            return False
        self._refusal = refusal  # post() answers it; a chunked body may still outgrow the drain
        return True

    def _answer_now(self, refusal: web.HTTPError) -> None:
        self.log_exception(type(refusal), refusal, None)
        self.send_error(refusal.status_code, exc_info=(type(refusal), refusal, None))

    async def data_received(self, chunk):
        if self._finished:
            return
        if self._refusal is not None:  # refused: the rest of the body is read and dropped
            self._drained += len(chunk)
            if self._drained > DRAIN_LIMIT:
                self._answer_now(self._refusal)
            return
        self._received += len(chunk)
        refusal = self._too_large(self._received)
        if refusal is None and self.upload.size < protocol.ARROW_PREFIX_BYTES:
            head = self.upload.head + bytes(chunk[: protocol.ARROW_PREFIX_BYTES])
            if not protocol.arrow_prefix_ok(head):
                refusal = web.HTTPError(400, "the body is not an Arrow IPC stream or file")
        if refusal is not None:
            if not self._answer_after_body(refusal):
                self._answer_now(refusal)
            return
        self._pending = self.run(self.upload.write, chunk)
        await self._pending

    async def post(self):
        if self._refusal is not None:
            raise self._refusal
        upload = self.upload
        if protocol.arrow_media_type(upload.head, upload.tail, upload.size) is None:
            raise web.HTTPError(400, "the body is not a complete Arrow IPC stream or file")
        if self._declared is None:  # a chunked body: now its size is known
            room = await self.run(self.store.make_room, upload.owner, upload.size, self._budget)
            refusal = self._no_room(room, upload.size)
            if refusal is not None:
                raise refusal
        try:
            info = await self.run(self.store.commit_upload, upload, **self._meta.model_dump())
        except UploadLost:
            raise web.HTTPError(409, "upload took too long and was discarded; retry") from None
        self.committed = True
        self.metrics.uploads.labels("committed").inc()
        self.settings["after_commit"]()
        self.write_json(info.to_json(), 201)

    async def get(self):
        query = self.parse(
            protocol.parse_list_query,
            {k: self.get_argument(k) for k in ("key", "limit", "user") if self.get_argument(k, None)},
        )
        owner = query.user
        if owner is None:
            owner = self.require_user()
        elif not self.caller.admin and owner != self.caller.user:
            raise web.HTTPError(403, f"listing another user's results needs {policy.ADMIN_SCOPE}")
        infos = await self.run(self.store.list, owner, query.key, query.limit)
        self.write_json({"results": [i.to_json() for i in infos]})

    def _abort(self):
        upload, self.upload = self.upload, None
        if upload is None or self.committed:
            return
        self.metrics.uploads.labels("aborted").inc()
        pending = self._pending

        async def abort():
            if pending is not None:
                try:
                    await pending
                except Exception:
                    pass
            await self.run(upload.abort)

        asyncio.ensure_future(abort())

    def write_error(self, status_code, **kwargs):
        if self.request.method == "POST":
            # the body may be unread: this connection cannot carry another request
            self.set_header("Connection", "close")
        super().write_error(status_code, **kwargs)

    def on_connection_close(self):
        self._abort()
        super().on_connection_close()

    def on_finish(self):
        self._abort()
        super().on_finish()


class ResultHandler(APIHandler):
    async def _info(self, result_id, touch=True):
        caller = self.require_caller()
        read = functools.partial(read_result, self.store, self.settings.get("shares"))
        token = self.hub_auth.get_token(self)
        try:  # the caller's own, or one a share open to the caller carries
            return await read_result_now(
                self.run, read, caller, result_id,
                lambda: current_groups(self.hub_auth, token, caller.user), touch=touch,
            )
        except NotFound:
            raise self.not_found() from None

    async def get(self, result_id):
        await self.stream(await self._info(result_id))

    async def stream(self, info):
        """Send the blob of ``info`` (a result the caller may read)."""
        try:
            f = await self.run(self.store.open_blob, info.id)
        except FileNotFoundError:  # evicted/deleted by another replica just now
            raise self.not_found() from None
        self.metrics.hits.inc()
        try:
            chunk = await self.run(f.read, CHUNK)
            self.set_header("Content-Type", protocol.stored_media_type(chunk))
            self.set_header("Content-Length", str(info.size))
            self.set_header(RESULT_HEADER, json.dumps(info.to_json()))
            while chunk:
                self.write(chunk)
                await self.flush()
                chunk = await self.run(f.read, CHUNK)
        finally:
            await self.run(f.close)

    async def delete(self, result_id):
        caller = self.require_caller()
        try:
            await self.run(self.store.delete, caller.user, result_id, admin=caller.admin)
        except NotFound:
            raise self.not_found() from None
        except Pinned:
            raise web.HTTPError(409, "the result is pinned by a notebook; unpin it first") from None
        self.set_status(204)
        self.finish()


class InfoHandler(ResultHandler):
    async def get(self, result_id):
        info = await self._info(result_id, touch=False)
        self.write_json(info.to_json())


class PinsHandler(APIHandler):
    async def put(self, result_id):
        caller = self.require_caller()
        pin = self.parse(protocol.parse_pin_request, self.request.body)
        try:
            info = await self.run(
                self.store.pin, caller.user, result_id, pin.ref, caller.admin, pin.server
            )
        except NotFound:
            raise self.not_found() from None
        except TooManyPins:
            raise web.HTTPError(
                409,
                f"the result holds {policy.MAX_PINS_PER_RESULT} pins, the most it may; "
                "unpin notebooks that no longer need it",
            ) from None
        self.write_json(info.to_json())

    async def delete(self, result_id):
        caller = self.require_caller()
        pin = self.parse(protocol.parse_pin_request, {"ref": self.get_argument("ref", None)})
        if pin.ref.startswith(SHARE_PIN):
            raise web.HTTPError(
                409, "a shared link carries this result; revoke the share to release it"
            )
        try:
            info = await self.run(self.store.unpin, caller.user, result_id, pin.ref, caller.admin)
        except NotFound:
            raise self.not_found() from None
        self.write_json(info.to_json())


class UnknownAPI(APIHandler):
    async def prepare(self):
        raise web.HTTPError(404, "not found")


#: (path under the service prefix, handler)
ROUTES = [
    ("api/results", ResultsHandler),
    (f"api/results/{RESULT_ID}", ResultHandler),
    (f"api/results/{RESULT_ID}/info", InfoHandler),
    (f"api/results/{RESULT_ID}/pins", PinsHandler),
    ("api/.*", UnknownAPI),
]
