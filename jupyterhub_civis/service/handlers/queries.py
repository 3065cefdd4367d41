"""The "My queries" page: the caller's stored results; delete for unpinned ones.

- ``GET  ``                        the page (HubOAuth login)
- ``POST results/<id>/delete``     delete (form with ``_xsrf``), back to the page
"""

from __future__ import annotations

from tornado import web

from jupyterhub_civis.service.handlers.results import RESULT_ID
from jupyterhub_civis.service.pages import PageHandler
from jupyterhub_civis.service.store import NotFound, Pinned


class QueriesPage(PageHandler):
    @web.authenticated
    async def get(self):
        owner = self.require_user()
        infos = await self.run(self.store.list, owner)
        reports = self.settings["reports"].store
        runs = await self.run(reports.running, owner)
        owned = await self.run(reports.listed, owner)
        self.render_page(
            "queries.html", results=infos, runs=runs, reports=owned,
            message=self.get_argument("message", ""),
        )


class DeleteResult(PageHandler):
    @web.authenticated
    async def post(self, result_id):
        owner = self.require_user()
        try:
            await self.run(self.store.delete, owner, result_id)
        except NotFound:
            raise self.not_found() from None
        except Pinned:
            raise web.HTTPError(409, "This result is pinned by a notebook.") from None
        self.redirect(self.settings["service_prefix"])


#: (label, path under the service prefix): the page in the Services menu
MENU = [("My queries", "")]

#: (path under the service prefix, handler); "" is the prefix itself
ROUTES = [
    (f"results/{RESULT_ID}/delete", DeleteResult),
    ("", QueriesPage),
]
