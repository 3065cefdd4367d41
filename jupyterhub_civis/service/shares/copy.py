""""Open a copy": a named server for the VIEWER in the snapshot's environment, the
notebook put there, JupyterLab opened on it.

- ``POST s/<id>/copy[?v=N]`` (form with ``_xsrf``; optional ``environment`` to pick
  another one when the recorded environment left the catalog)

The service starts (or reuses) ``copy-<environment hash>`` through the Hub API with
the viewer's own OAuth token (``hub.py``), records the copy, and sends the browser
to the server — through the hub's spawn-pending page while it is still starting —
where the bundle's server extension (``jupyterhub_civis.share_copy``) fetches the
version with the server's own token and opens it in JupyterLab.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from tornado import web

from jupyterhub_civis.service.shares import hub
from jupyterhub_civis.service.shares.pages import SHARE_ID, SharePage

ENVIRONMENT_CHARS = 255


class OpenCopy(SharePage):
    @web.authenticated
    async def post(self, share_id):
        user = self.require_user()
        info = await self.viewable(share_id)
        version = self.version_of(info)
        chosen = self.get_body_argument("environment", "").strip()
        if len(chosen) > ENVIRONMENT_CHARS:
            raise web.HTTPError(400, f"environment: at most {ENVIRONMENT_CHARS} characters")
        if self.get_body_argument("use_default", ""):
            options = None
        elif chosen:
            options = {"environment": chosen}
        else:
            options = hub.copy_options(version.environment)
        token = self.hub_auth.get_token(self)
        if not token:
            raise web.HTTPError(403, "log in again to open a copy")
        api = hub.HubAPI(self.hub_auth.api_url, token)
        name = hub.copy_server_name(options)
        model = await api.server(user, name)
        ready = bool(model and model.get("ready"))
        if not (ready or (model and model.get("pending"))):
            started = await api.start(user, name, options)
            ready = started.status == 201  # the hub answers 201 once the server is up
            if not started.ok:
                self.set_status(409 if started.status == 400 else 502)
                self.render_page(
                    "share_copy_refused.html",
                    share=info,
                    version=version,
                    env=version.environment,
                    message=started.message,
                )
                return
        self.settings["audit"].record(info.id, user, "copy", version.number)
        prefix = self.page_namespace()["prefix"]
        server = f"{prefix}user/{quote(user, safe='')}/{quote(name, safe='')}/"
        opener = server + "civis/shares/open?" + urlencode({"share": info.id, "v": version.number})
        if ready:  # straight to the server: no spawn-pending hop
            self.redirect(opener)
            return
        pending = f"{self.hub_auth.hub_prefix}spawn-pending/{quote(user, safe='')}/{quote(name, safe='')}"
        self.redirect(pending + "?" + urlencode({"next": opener}))


ROUTES = [(f"s/{SHARE_ID}/copy", OpenCopy)]
