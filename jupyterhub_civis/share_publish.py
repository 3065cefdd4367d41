"""Single-user server extension: the backend of JupyterLab's "Share…" command.

``POST <server>/civis/shares/publish`` ``{"path", "title", "audience", "expires"}``
(JupyterLab's own request: its XSRF and login) reads the notebook at ``path`` from
this server's contents manager exactly as saved, and publishes it to the civis
service with the server's own token: a new link the first time, then the next
version of the same link (this user's live snapshot of the same path on the same
server). Answers the service's share (``url``, ``id``, ``version``) or its error.

``POST <server>/civis/reports/publish`` ``{"path", "title", "audience", "schedule",
"on_demand", "refresh_after"}`` (the dialog's "Report" choice) creates a report
link of the saved notebook through the service's ``api/reports`` (the notebook's
recorded environment is the one its runs start with). Answers ``url`` and ``id``.

``GET``/``POST <server>/civis/shares/live``: whether this server may be shared live,
and a JupyterHub share code of it through the service (see ``Live``).
"""

from __future__ import annotations

import json
import os

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import ensure_async, url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from jupyterhub_civis.share_copy import ShareCopy

ALLOWED = {"path", "title", "audience", "expires"}


REPORT_ALLOWED = {"path", "title", "audience", "expires", "schedule", "on_demand", "refresh_after"}


class _Publish(APIHandler):
    async def saved(self, allowed: set[str], as_text: bool) -> tuple[dict, str, dict, ShareCopy]:
        """The checked body, the notebook's path, its contents model as saved, the client."""
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "body: is not valid JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("path"), str):
            raise web.HTTPError(400, "path: the notebook's path is required")
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise web.HTTPError(400, f"{unknown[0]}: is not a recognised option")
        path = body["path"].strip("/")
        cm = self.contents_manager
        if not path.endswith(".ipynb") or not await ensure_async(cm.file_exists(path)):
            raise web.HTTPError(404, f"path: no notebook {path!r} on this server")
        if as_text:
            model = await ensure_async(cm.get(path, content=True, type="file", format="text"))
        else:
            model = await ensure_async(cm.get(path, content=True, type="notebook"))
        copier: ShareCopy = self.settings["civis_share_copy"]
        if not copier.service_url:
            raise web.HTTPError(503, "this server does not know the civis service")
        return body, path, model, copier


class PublishReport(_Publish):
    @web.authenticated
    async def post(self):
        body, path, model, copier = await self.saved(REPORT_ALLOWED, as_text=False)
        request = {k: v for k, v in body.items() if v is not None}
        request.update(path=path, notebook=json.loads(json.dumps(model["content"])))
        try:
            out = json.loads(await copier.send("POST", "api/reports", request))
        except HTTPClientError as e:
            refuse(self, e)
            return
        self.finish(json.dumps({"id": out["id"], "url": out["url"]}))


class Publish(_Publish):
    @web.authenticated
    async def post(self):
        body, path, model, copier = await self.saved(ALLOWED, as_text=True)
        server = os.environ.get("JUPYTERHUB_SERVER_NAME", "")
        try:
            mine = json.loads(await copier.fetch("api/shares"))["shares"]
            existing = next(
                (
                    s
                    for s in mine
                    if s["kind"] == "snapshot"
                    and s["path"] == path
                    and s.get("server", "") == server
                    and s.get("revoked") is None
                ),
                None,
            )
            if existing:
                answer = await copier.send(
                    "POST", f"api/shares/{existing['id']}/versions",
                    {"notebook": model["content"], "path": path},
                )
                # the dialog's audience, expiry and title apply to the link from now on
                change = {"expires": body.get("expires")}
                if body.get("audience"):
                    change["audience"] = body["audience"]
                if body.get("title"):
                    change["title"] = body["title"]
                answer = await copier.send("PATCH", f"api/shares/{existing['id']}", change)
            else:
                answer = await copier.send(
                    "POST",
                    "api/shares",
                    {
                        "notebook": model["content"],
                        "path": path,
                        "server": server,
                        "title": body.get("title") or "",
                        "audience": body.get("audience") or {},
                        "expires": body.get("expires"),
                    },
                )
        except HTTPClientError as e:
            refuse(self, e)
            return
        out = json.loads(answer)
        self.finish(
            json.dumps({"id": out["id"], "url": out["url"], "version": len(out["versions"])})
        )


class Live(APIHandler):
    """``GET``: whether this server may be shared live (``{"available", "reason"}``): its
    token holds the hub's ``shares`` scope for it, which exists from JupyterHub 5 on
    and is granted by ``declare_service(live_shares=True)``. ``POST {"title",
    "expires_in"}``: a JupyterHub share code of this server, through the service (which
    lists it with the user's other shares): ``{"id", "accept_url", "expires"}``."""

    @web.authenticated
    async def get(self):
        copier: ShareCopy = self.settings["civis_share_copy"]
        hub_api = os.environ.get("JUPYTERHUB_API_URL", "")
        if not (copier.service_url and hub_api):
            self.finish(json.dumps({"available": False, "reason": "not started by JupyterHub"}))
            return
        try:
            r = await AsyncHTTPClient().fetch(
                hub_api.rstrip("/") + "/user",
                headers={"Authorization": f"token {copier.token}"},
                request_timeout=30,
            )
            scopes = json.loads(r.body).get("scopes") or []
        except (HTTPClientError, OSError, ValueError) as e:
            self.finish(json.dumps({"available": False, "reason": f"the hub did not answer: {e}"}))
            return
        available = any(s == "shares" or s.startswith("shares!") for s in scopes)
        reason = "" if available else "live sharing needs JupyterHub 5 with live shares enabled"
        self.finish(json.dumps({"available": available, "reason": reason}))

    @web.authenticated
    async def post(self):
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "body: is not valid JSON") from None
        unknown = sorted(set(body) - {"title", "expires_in"}) if isinstance(body, dict) else []
        if not isinstance(body, dict) or unknown:
            raise web.HTTPError(400, f"{unknown[0] if unknown else 'body'}: is not a recognised option")
        copier: ShareCopy = self.settings["civis_share_copy"]
        request = {"server": os.environ.get("JUPYTERHUB_SERVER_NAME", ""), **body}
        try:
            out = json.loads(await copier.send("POST", "api/shares/live", request))
        except HTTPClientError as e:
            refuse(self, e)
            return
        self.finish(json.dumps({k: out.get(k) for k in ("id", "accept_url", "expires")}))


def refuse(handler, e: HTTPClientError) -> None:
    """Pass the service's refusal (its status and message) on to JupyterLab."""
    status = e.code if e.code in (400, 403, 404, 413) else 502
    try:
        message = json.loads(e.response.body)["message"]
    except Exception:
        message = str(e)
    handler.set_status(status)
    handler.finish(json.dumps({"status": status, "message": message}))


def _jupyter_server_extension_points():
    return [{"module": "jupyterhub_civis.share_publish"}]


def _load_jupyter_server_extension(serverapp):
    settings = serverapp.web_app.settings
    settings.setdefault("civis_share_copy", ShareCopy(parent=serverapp))
    base = settings["base_url"]
    serverapp.web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "civis/shares/publish"), Publish),
            (url_path_join(base, "civis/reports/publish"), PublishReport),
            (url_path_join(base, "civis/shares/live"), Live),
        ],
    )
