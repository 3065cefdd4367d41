"""``api/shares…``: thin handlers (parse, authorise, delegate, serialise).

- ``POST   api/shares``                          create a snapshot share (``CreateShare``) → 201
- ``POST   api/shares/live``                     a JupyterHub share code for a running server
  (``CreateLiveShare``; JupyterHub ≥ 5 with ``shares!user``) → 201 with its ``accept_url`` once
- ``GET    api/shares``                          the caller's shares (revoked ones too)
- ``GET    api/shares/shared-with-me``           live shares of others the caller may open
- ``GET    api/shares/<id>``                     one share (the owner sees audience and state)
- ``PATCH  api/shares/<id>``                     audience / expiry / title (``UpdateShare``)
- ``DELETE api/shares/<id>``                     revoke → 204
- ``POST   api/shares/<id>/versions``            publish a new version (``NewVersion``) → 201
- ``GET    api/shares/<id>/versions/<n>/notebook``  the version's .ipynb bytes
- ``GET    api/shares/<id>/events``              who viewed or copied it (owner only)
- ``GET    api/shares/<id>/results/<result>``    a result the share carries, for its audience

Every refusal to a viewer (not in the audience, revoked, expired, mistyped) is the
same ``404 share not found``. State changes by browser cookie need XSRF (HubOAuth).
"""

from __future__ import annotations

import datetime
import time

from tornado import web

from jupyterhub_civis.service.handlers.base import APIHandler
from jupyterhub_civis.service.handlers.results import ResultHandler
from jupyterhub_civis.service.shares import hub, policy, schemas
from jupyterhub_civis.service.shares.access import ShareAccess
from jupyterhub_civis.service.shares.store import ShareInfo, ShareNotFound
from jupyterhub_civis.service.store import NotFound

SHARE_ID = r"([^/]+)"
#: a JSON body carrying a notebook of MAX_NOTEBOOK_BYTES (escaping may double it)
MAX_BODY = 2 * schemas.MAX_NOTEBOOK_BYTES + (1 << 20)


async def revoke_share(handler, owner: str, share_id: str) -> None:
    """Revoke: a live share's share code (and what it granted) goes at the hub first,
    with the owner's own token; then the link is closed for everyone."""
    shares = handler.settings["shares"]
    try:
        live = await handler.run(shares.live_code, owner, share_id)
    except ShareNotFound:
        raise web.HTTPError(404, policy.NOT_FOUND) from None
    if live is not None:
        server, code_id = live
        api = hub.HubAPI(handler.hub_auth.api_url, handler.hub_auth.get_token(handler) or "")
        try:
            await api.revoke_live(owner, server, code_id)
        except Exception as e:
            status, message = hub.hub_error(e)
            raise web.HTTPError(
                status, f"the hub refused to revoke the share code: {message}"
            ) from None
    await handler.run(shares.revoke, owner, share_id)


def audience(body: schemas.AudienceBody) -> policy.Audience:
    return policy.Audience(frozenset(body.users), frozenset(body.groups), body.everyone)


class SharesBase(ShareAccess, APIHandler):

    def body_json(self, info: ShareInfo) -> dict:
        out = info.to_json(for_owner=info.owner == self.caller.user)
        out["url"] = f"{self.settings['service_prefix']}s/{info.id}"
        return out

    def parse_body(self, model):
        try:
            return schemas.parse(model, self.body)
        except ValueError as e:  # InvalidInput names the field
            raise web.HTTPError(400, str(e)) from None

    _chunks: list[bytes] | None = None  # a streamed body (``BodyHandler``)

    @property
    def body(self) -> bytes:
        return self.request.body if self._chunks is None else b"".join(self._chunks)


@web.stream_request_body
class BodyHandler(SharesBase):
    """Reads bodies up to ``MAX_BODY`` (the server's default is 1 MiB)."""

    async def prepare(self):
        self._chunks = []
        await super().prepare()
        if self.request.method in ("POST", "PATCH", "PUT"):
            self.request.connection.set_max_body_size(MAX_BODY)

    def data_received(self, chunk):
        self._chunks.append(chunk)


class SharesHandler(BodyHandler):
    async def get(self):
        owner = self.require_user()
        infos = await self.run(self.shares.list_owned, owner)
        self.write_json({"shares": [self.body_json(i) for i in infos]})

    async def post(self):
        owner = self.require_user()
        body = self.parse_body(schemas.CreateShare)
        refusal = policy.expiry_refusal(body.expires, time.time())
        if refusal:
            raise web.HTTPError(400, refusal)
        try:
            info = await self.run(
                self.shares.create,
                owner,
                notebook=body.notebook.encode("utf-8"),
                audience=audience(body.audience),
                kind=body.kind,
                title=body.title,
                path=body.path,
                server=body.server,
                expires=body.expires,
            )
        except ValueError as e:
            raise web.HTTPError(400, str(e)) from None
        self.write_json(self.body_json(info), 201)


class LiveShares(SharesBase):
    async def post(self):
        owner = self.require_user()
        body = self.parse_body(schemas.CreateLiveShare)
        token = self.hub_auth.get_token(self)
        api = hub.HubAPI(self.hub_auth.api_url, token or "")
        try:
            code = await api.share_code(owner, body.server, body.expires_in)
        except Exception as e:
            status, message = hub.hub_error(e)
            if status == 403:
                message = (
                    f"{message} — live shares need JupyterHub 5 or later with the "
                    "shares!user scope for your user (see docs/sharing.md)"
                )
            raise web.HTTPError(status, f"server: {message}") from None
        expires = code.get("expires_at")
        info = await self.run(
            self.shares.create_live,
            owner,
            server=body.server,
            code_id=code["id"],
            expires=_timestamp(expires) if expires else None,
            title=body.title,
        )
        out = self.body_json(info)
        out["accept_url"] = code.get("full_accept_url") or code.get("accept_url")
        self.write_json(out, 201)


def _timestamp(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class SharedWithMe(SharesBase):
    async def get(self):
        user = self.require_user()
        infos = await self.run(self.shares.list_shared_with, user, self.caller.groups)
        self.write_json({"shares": [self.body_json(i) for i in infos]})


class ShareHandler(BodyHandler):
    async def get(self, share_id):
        self.require_user()
        try:  # the owner sees their share in any state; others only while they may open it
            info = await self.run(self.shares.owned, self.caller.user, share_id)
        except ShareNotFound:
            info = await self.viewable(share_id)
        self.write_json(self.body_json(info))

    async def patch(self, share_id):
        owner = self.require_user()
        body = self.parse_body(schemas.UpdateShare)
        given = schemas.fields_set(body)
        if "expires" in given:
            refusal = policy.expiry_refusal(body.expires, time.time())
            if refusal:
                raise web.HTTPError(400, refusal)
        try:
            info = await self.run(
                self.shares.update,
                owner,
                share_id,
                audience=audience(body.audience) if body.audience else None,
                expires=body.expires,
                set_expires="expires" in given,
                title=body.title,
            )
        except ShareNotFound:
            raise self.share_not_found() from None
        self.write_json(self.body_json(info))

    async def delete(self, share_id):
        await revoke_share(self, self.require_user(), share_id)
        self.set_status(204)
        self.finish()


class VersionsHandler(BodyHandler):
    async def post(self, share_id):
        owner = self.require_user()
        body = self.parse_body(schemas.NewVersion)
        try:
            info = await self.run(
                self.shares.add_version, owner, share_id, body.notebook.encode("utf-8"), body.path
            )
        except ShareNotFound:
            raise self.share_not_found() from None
        except ValueError as e:
            raise web.HTTPError(400, str(e)) from None
        self.write_json(self.body_json(info), 201)


class NotebookHandler(SharesBase):
    async def get(self, share_id, number):
        self.require_user()
        info = await self.viewable(share_id)
        if not any(str(v.number) == number for v in info.versions):
            raise self.share_not_found()
        raw = await self.run(self.shares.notebook, info.id, int(number))
        self.set_header("Content-Type", "application/x-ipynb+json")
        self.set_header("Content-Disposition", "attachment")
        self.finish(raw)


class EventsHandler(SharesBase):
    async def get(self, share_id):
        owner = self.require_user()
        await self.settings["audit"].flush()
        try:
            events = await self.run(self.shares.events, owner, share_id)
        except ShareNotFound:
            raise self.share_not_found() from None
        self.write_json({"events": [e.to_json() for e in events]})


class SharedResult(ShareAccess, ResultHandler):
    """A result read through a share: the audience reads exactly what the share
    carries (the owner's result), and nothing else of the owner's."""

    async def _info(self, share_id, result_id, touch=True):
        self.require_user()
        info = await self.viewable(share_id)  # groups asked afresh where they decide
        if not info.carries(result_id):
            raise self.not_found()
        try:
            return await self.run(self.store.get, info.owner, result_id, touch=touch)
        except NotFound:
            raise self.not_found() from None

    async def get(self, share_id, result_id):
        await self.stream(await self._info(share_id, result_id))

    async def delete(self, *args):
        raise web.HTTPError(405)


#: (path under the service prefix, handler)
ROUTES = [
    ("api/shares", SharesHandler),
    ("api/shares/shared-with-me", SharedWithMe),
    ("api/shares/live", LiveShares),
    (f"api/shares/{SHARE_ID}", ShareHandler),
    (f"api/shares/{SHARE_ID}/versions", VersionsHandler),
    (rf"api/shares/{SHARE_ID}/versions/(\d{{1,7}})/notebook", NotebookHandler),
    (f"api/shares/{SHARE_ID}/events", EventsHandler),
    (f"api/shares/{SHARE_ID}/results/([^/]+)", SharedResult),
]
