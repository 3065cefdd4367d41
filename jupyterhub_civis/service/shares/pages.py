"""The sharing pages: the viewer of a link, its sandboxed rendering, "Shared by me"
and "Shared with me".

- ``GET  s/<id>[?v=N]``           the viewer (hub page): who, when, environment, results, versions
- ``GET  s/<id>/render?v=N``      the sanitised rendering, CSP ``sandbox``, framed by the viewer
- ``GET  s/<id>/render/img/<sha256>.<ext>?v=N``  an image of that rendering (immutable)
- ``GET  shares/mine``            "Shared by me": audience, expiry, views and copies; revoke
- ``POST shares/<id>/revoke``     revoke (form with ``_xsrf``)
- ``POST shares/<id>/update``     change audience / expiry (form with ``_xsrf``)
- ``GET  shares/with-me``         "Shared with me"
"""

from __future__ import annotations

import datetime
import time

from tornado import web

from jupyterhub_civis.errors import InvalidInput
from jupyterhub_civis.service.pages import PageHandler
from jupyterhub_civis.service.shares import policy, render, schemas
from jupyterhub_civis.service.shares.access import ShareAccess
from jupyterhub_civis.service.shares.api import SHARE_ID, audience, revoke_share
from jupyterhub_civis.service.shares.store import ShareInfo, ShareNotFound


class SharePage(ShareAccess, PageHandler):
    def page_namespace(self) -> dict:
        return {**super().page_namespace(), "utc": utc, "title_of": policy.display_title}

    def version_of(self, info: ShareInfo):
        try:
            query = schemas.parse(schemas.ViewQuery, {"v": self.get_argument("v", None) or None})
        except InvalidInput:
            raise self.share_not_found() from None
        if query.v is None:
            return info.latest
        version = next((v for v in info.versions if v.number == query.v), None)
        if version is None:
            raise self.share_not_found()
        return version


class Viewer(SharePage):
    @web.authenticated
    async def get(self, share_id):
        user = self.require_user()
        info = await self.viewable(share_id)
        version = self.version_of(info)
        if user != info.owner:
            self.settings["audit"].record(info.id, user, "view", version.number)
        self.render_page(
            "share.html",
            share=info,
            version=version,
            env=version.environment,
            is_owner=user == info.owner,
        )


class Rendered(SharePage):
    """Only ever shown inside the viewer's sandboxed iframe; its own CSP sandboxes it
    again, so it cannot run script even when opened on its own."""

    def set_default_headers(self):
        super().set_default_headers()
        self.set_header("Content-Security-Policy", render.RENDER_CSP)
        self.set_header("X-Frame-Options", "SAMEORIGIN")

    @web.authenticated
    async def get(self, share_id):
        self.require_user()
        info = await self.viewable(share_id)
        version = self.version_of(info)
        cached = await self.rendering(info, version.number)
        images = f"{self.request.protocol}://{self.request.host}{self.settings['service_prefix']}"
        self.set_header("Content-Security-Policy", render.render_csp(
            f"{images}s/{info.id}/render/img/"))
        self.send_rendering(cached)

    async def rendering(self, info: ShareInfo, number: int) -> render.Rendering:
        """A version's rendering: from memory, else the database, else rendered now."""
        cache = self.settings["render_cache"]
        key = (info.id, number)
        cached = cache.get(key)
        if cached is None:
            stored = await self.run(self.shares.rendered, *key)
            if stored is None or not render.is_packed(stored):
                stored = await self._render(info, key, replace=stored is not None)
            cached = await self.run(lambda: render.Rendering.of(*render.unpack(stored)))
            cache.put(key, cached)
        return cached

    def send_rendering(self, cached: render.Rendering) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "private, max-age=3600")  # a version never changes
        self.set_header("Vary", "Accept-Encoding")
        if "gzip" in self.request.headers.get("Accept-Encoding", ""):
            self.set_header("Content-Encoding", "gzip")
            self._etag = cached.etag[:-1] + '-gz"'
            self.finish(cached.gzipped)
        else:
            self._etag = cached.etag
            self.finish(cached.html)

    _etag: str | None = None

    def compute_etag(self) -> str | None:
        return self._etag

    async def _render(self, info: ShareInfo, key: tuple[str, int], replace: bool) -> bytes:
        """Render a version (first view on any replica) and keep it in the database."""
        raw = await self.run(self.shares.notebook, *key)
        image_url = "render/img/{name}?v=" + str(key[1])  # relative to the rendering's URL
        try:
            document, images = await self.run(
                render.render, raw, title=info.display_title, image_url=image_url
            )
        except Exception as e:
            self.log.warning("share %s v%d not rendered: %s", *key, e)
            document, images = render.render_error("This notebook could not be rendered."), {}
        packed = await self.run(render.pack, document, images)
        await self.run(self.shares.keep_rendered, *key, packed, replace=replace)
        return packed

    def write_error(self, status_code, **kwargs):
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(render.render_error(self.error_message(**kwargs)))


class RenderedImage(Rendered):
    """An image of a version's rendering, by the SHA-256 of its bytes: immutable, so
    cached by the browser for good; the same audience check and 404 as the rendering."""

    def set_default_headers(self):
        super().set_default_headers()
        self.set_header("Content-Security-Policy", render.IMAGE_CSP)

    @web.authenticated
    async def get(self, share_id, name):
        self.require_user()
        info = await self.viewable(share_id)
        version = self.version_of(info)
        content = (await self.rendering(info, version.number)).images.get(name)
        if content is None:
            raise self.share_not_found()
        self.set_header("Content-Type", render.CONTENT_TYPES[name[name.rindex("."):]])
        self.set_header("Cache-Control", "private, max-age=31536000, immutable")
        self._etag = '"' + name[: name.rindex(".")] + '"'
        self.finish(content)


class SharedByMe(SharePage):
    @web.authenticated
    async def get(self):
        owner = self.require_user()
        infos = await self.run(self.shares.list_owned, owner)
        await self.settings["audit"].flush()
        events = {}
        for info in infos:
            events[info.id] = await self.run(self.shares.events, owner, info.id, 50)
        reports = await self.run(self.settings["reports"].store.listed, owner)
        self.render_page(
            "shares_mine.html",
            shares=infos,
            reports=reports,
            events=events,
            message=self.get_argument("message", ""),
        )


class SharedWithMe(SharePage):
    @web.authenticated
    async def get(self):
        user = self.require_user()
        infos = await self.run(self.shares.list_shared_with, user, self.caller.groups)
        self.render_page("shares_with_me.html", shares=infos)


def utc(ts: float | None) -> str:
    if ts is None:
        return "never"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _names(text: str) -> list[str]:
    return [n for n in (part.strip() for part in text.replace("\n", ",").split(",")) if n]


def _expiry(text: str) -> float | None:
    """A date (``YYYY-MM-DD``, end of that day UTC) from the form; empty: never."""
    if not text.strip():
        return None
    try:
        day = datetime.date.fromisoformat(text.strip())
    except ValueError:
        raise web.HTTPError(400, "expires: give a date as YYYY-MM-DD, or leave it empty") from None
    end = datetime.datetime.combine(day, datetime.time.max, tzinfo=datetime.UTC)
    return end.timestamp()


class Revoke(SharePage):
    @web.authenticated
    async def post(self, share_id):
        await revoke_share(self, self.require_user(), share_id)
        self.redirect(self.settings["service_prefix"] + "shares/mine")


class Update(SharePage):
    @web.authenticated
    async def post(self, share_id):
        owner = self.require_user()
        raw = {
            "users": _names(self.get_body_argument("users", "")),
            "groups": _names(self.get_body_argument("groups", "")),
            "everyone": self.get_body_argument("everyone", "") == "on",
        }
        try:
            body = schemas.parse(schemas.AudienceBody, raw)
        except InvalidInput as e:
            raise web.HTTPError(400, f"audience: {e.message}") from None
        expires = _expiry(self.get_body_argument("expires", ""))
        refusal = policy.expiry_refusal(expires, time.time())
        if refusal:
            raise web.HTTPError(400, refusal)
        try:
            await self.run(
                self.shares.update,
                owner,
                share_id,
                audience=audience(body),
                expires=expires,
                set_expires=True,
            )
        except ShareNotFound:
            raise self.share_not_found() from None
        self.redirect(self.settings["service_prefix"] + "shares/mine")


#: (label, path under the service prefix): pages in the Services menu
MENU = [("Shared by me", "shares/mine"), ("Shared with me", "shares/with-me")]

#: (path under the service prefix, handler)
ROUTES = [
    (f"s/{SHARE_ID}", Viewer),
    (f"s/{SHARE_ID}/render", Rendered),
    (f"s/{SHARE_ID}/render/img/([0-9a-f]{{64}}\\.(?:png|jpg|svg))", RenderedImage),
    ("shares/mine", SharedByMe),
    ("shares/with-me", SharedWithMe),
    (f"shares/{SHARE_ID}/revoke", Revoke),
    (f"shares/{SHARE_ID}/update", Update),
]
