"""Single-user server extension: open a copy of a shared notebook here.

``GET <server>/civis/shares/open?share=<id>&v=<n>`` (where the civis service's
"Open a copy" sends the viewer's browser once this server is up) fetches that
version from the civis service with this server's own token (its user must be
in the share's audience: the service decides), saves it as
``shared/<notebook name>`` (the same version again reuses its file) and opens it
in JupyterLab. Re-running it reads the owner's pinned results through the share.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import posixpath
import re
import time
from urllib.parse import quote

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import ensure_async, url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets import Unicode, default
from traitlets.config import LoggingConfigurable

from jupyterhub_civis import envvars

FOLDER = "shared"
#: how long, and how many, versions fetched while a browser logs in are kept (``prefetch``)
PREFETCH_SECONDS = 60
MAX_PREFETCHES = 2
_SHARE_ID = re.compile(r"\A[A-Za-z0-9_-]{32}\Z")
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


class ShareCopy(LoggingConfigurable):
    service_url = Unicode(
        help="The civis service's URL with its prefix. Default: $CIVIS_SERVICE_URL "
        "(declare_service sets it for every server)."
    ).tag(config=True)

    @default("service_url")
    def _default_service_url(self):
        return os.environ.get(envvars.SERVICE_URL, "")

    token = Unicode(help="Token for the service. Default: $JUPYTERHUB_API_TOKEN.").tag(
        config=True
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        #: (share, version) -> (its fetch, when it started): see ``prefetch``
        self._prefetched: dict[tuple[str, str], tuple[asyncio.Future, float]] = {}

    @default("token")
    def _default_token(self):
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    async def fetch(self, path: str) -> bytes:
        return await self.send("GET", path)

    def version(self, share_id: str, number: str) -> asyncio.Future:
        """The share's description and that version's bytes: a prefetch of the same
        version (``prefetch``) if one is there, else fetched now."""
        entry = self._prefetched.pop((share_id, number), None)
        if entry is not None and time.monotonic() - entry[1] < PREFETCH_SECONDS:
            return entry[0]
        return self._fetch_version(share_id, number)

    def prefetch(self, share_id: str, number: str) -> None:
        """Start fetching a version while the browser logs in to this server (the hub's
        OAuth redirects): kept in memory only — nothing is written or shown until an
        authenticated request asks for it — for ``PREFETCH_SECONDS``, at most
        ``MAX_PREFETCHES`` at a time; the service decides access with this server's
        token either way."""
        now = time.monotonic()
        for key, (task, at) in list(self._prefetched.items()):
            if now - at >= PREFETCH_SECONDS:
                del self._prefetched[key]
                task.cancel()
        key = (share_id, number)
        if key in self._prefetched or len(self._prefetched) >= MAX_PREFETCHES:
            return
        self.log.info("civis: fetching shared notebook %s v%s while the browser logs in", *key)
        task = self._fetch_version(share_id, number)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: no warning
        self._prefetched[key] = (task, now)

    def _fetch_version(self, share_id: str, number: str) -> asyncio.Future:
        return asyncio.ensure_future(
            asyncio.gather(
                self.fetch(f"api/shares/{share_id}"),
                self.fetch(f"api/shares/{share_id}/versions/{number}/notebook"),
            )
        )

    async def send(self, method: str, path: str, body: dict | None = None) -> bytes:
        r = await AsyncHTTPClient().fetch(
            self.service_url.rstrip("/") + "/" + path,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            body=None if body is None else json.dumps(body),
            request_timeout=120,
        )
        return r.body


def copy_name(path: str, title: str, digest: str) -> str:
    """``shared/<name>-<first 8 of the version's hash>.ipynb``: safe, stable per version."""
    base = posixpath.basename(path) or title or "notebook"
    stem = _UNSAFE.sub("-", base.removesuffix(".ipynb")).strip(" .-")[:80] or "notebook"
    return f"{FOLDER}/{stem}-{digest[:8]}.ipynb"


class OpenShare(JupyterHandler):
    async def get(self):
        share_id = self.get_argument("share", "")
        number = self.get_argument("v", "")
        if not _SHARE_ID.match(share_id) or not number.isdigit() or len(number) > 7:
            raise web.HTTPError(400, "share and v must name a shared notebook and its version")
        copier: ShareCopy = self.settings["civis_share_copy"]
        if not copier.service_url:
            raise web.HTTPError(404, "this server does not know the civis service")
        if not self.current_user:  # the browser goes through the hub's login first
            copier.prefetch(share_id, number)
        await self.open_copy(copier, share_id, number)

    @web.authenticated
    async def open_copy(self, copier: ShareCopy, share_id: str, number: str):
        try:
            described, raw = await copier.version(share_id, number)
        except HTTPClientError as e:
            raise web.HTTPError(404 if e.code in (403, 404) else 502, "share not found") from None
        info = json.loads(described)
        path = copy_name(info.get("path", ""), info.get("title", ""), hashlib.sha256(raw).hexdigest())
        cm = self.contents_manager
        if not await ensure_async(cm.dir_exists(FOLDER)):
            await ensure_async(cm.save({"type": "directory"}, FOLDER))
        if not await ensure_async(cm.file_exists(path)):
            # the bytes as shared (the service checked they are a notebook), saved as a
            # file: no re-parse and re-validation of a large notebook on the way to
            # JupyterLab, and never signed as trusted here (its outputs are someone
            # else's; JupyterLab shows them as untrusted until the viewer re-runs it)
            text = raw.decode("utf-8")
            await ensure_async(cm.save({"type": "file", "format": "text", "content": text}, path))
        self.redirect(url_path_join(self.base_url, "lab", "tree", quote(path)))


def _jupyter_server_extension_points():
    return [{"module": "jupyterhub_civis.share_copy"}]


def _load_jupyter_server_extension(serverapp):
    serverapp.web_app.settings.setdefault("civis_share_copy", ShareCopy(parent=serverapp))
    route = url_path_join(serverapp.web_app.settings["base_url"], "civis/shares/open")
    serverapp.web_app.add_handlers(".*$", [(route, OpenShare)])
