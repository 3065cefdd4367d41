"""The pages of a report link (hub pages, thin: look up, authorise, render a template).

- ``GET r/<id>[?run=<run>]``          the latest successful run (or one past run), its facts,
                                      Refresh for those who may; the owner sees a failed
                                      latest refresh's error
- ``GET r/<id>/render?run=<run>``     that run's executed notebook, rendered exactly as a
                                      shared snapshot (``shares.render``, same CSP sandbox)
- ``GET r/<id>/history``              every run: trigger, status, duration, error (owner)
- ``GET r/<id>/compare?run=<run>``    a run next to the latest successful one, and the
                                      code cells whose text output changed (``diff.py``)

Refresh is the REST API's ``POST api/reports/<id>/runs`` (XSRF header) from
``static/reports.js``, which then polls ``GET api/reports/<id>`` for progress.
Someone who may not view the report gets the same 404 page as for a missing link.
"""

from __future__ import annotations

import datetime
import json
import re

from tornado import web

from jupyterhub_civis.execution import parameters as params
from jupyterhub_civis.service.pages import PageHandler
from jupyterhub_civis.service.reports import diff, policy
from jupyterhub_civis.service.reports.access import ReportAccess
from jupyterhub_civis.service.reports.store import report_json, run_json
from jupyterhub_civis.service.shares import render
from jupyterhub_civis.service.shares.pages import Rendered, utc

ID = r"([0-9a-f]{32})"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")


class ReportPage(ReportAccess, PageHandler):
    def page_namespace(self) -> dict:
        return {**super().page_namespace(), "utc": utc}

    def run_argument(self) -> str | None:
        run_id = self.get_argument("run", "") or None
        if run_id is not None and not RUN_ID.match(run_id):
            raise web.HTTPError(404, "run not found")
        return run_id

    def facts(self, row) -> dict:
        """What the templates need of a report the caller may see."""
        user = self.caller.user
        return {
            "report": report_json(row),
            "is_owner": policy.may_manage(row.owner, user),
            "may_refresh": policy.may_refresh(row.owner, row.on_demand, user),
            "refreshers": "the owner" if row.on_demand == policy.OWNER
            else "the owner and everyone who may view it",
        }


#: the form control of each parameter type (``execution.parameters`` types them)
INPUT_KINDS = {bool: "bool", int: "int", float: "float", str: "str", datetime.date: "date"}


def parameter_fields(row, is_owner: bool) -> list[dict]:
    """The parameter form's fields: name, kind, and a starting value (the notebook's
    default; for the owner, their scheduled value — viewers never see those). Values are
    shown, never run: the server validates what comes back (``parameters.validate``)."""
    defaults = params.parameter_defaults(json.loads(row.notebook))
    chosen = policy.loads(row.parameters, {}) if is_owner else {}
    fields = []
    for name, default in defaults.items():
        value = chosen.get(name, default)
        if isinstance(value, datetime.date):
            value = value.isoformat()
        fields.append({"name": name, "kind": INPUT_KINDS[type(default)], "value": value})
    return fields


class Viewer(ReportPage):
    @web.authenticated
    async def get(self, report_id):
        row = await self.report(report_id)
        latest, active = await self.view(row)
        run_id = self.run_argument()
        shown = latest if run_id is None else await self.shown_run(row, run_id)
        recent = await self.run(self.reports.store.runs, row.id, 1)
        failed = None
        facts = self.facts(row)
        if facts["is_owner"] and recent and recent[0]["status"] not in policy.ACTIVE + ("done",):
            newest = await self.run(self.reports.store.run, recent[0]["id"])
            failed = run_json(newest, detail=True)
        self.render_page(
            "report.html",
            run=run_json(shown) if shown else None,
            is_latest=shown is not None and latest is not None and shown.id == latest.id,
            active=active,
            failed=failed,
            fields=parameter_fields(row, facts["is_owner"]) if facts["may_refresh"] else [],
            **facts,
        )


class History(ReportPage):
    @web.authenticated
    async def get(self, report_id):
        row = await self.report(report_id)
        runs = await self.run(self.reports.store.runs, row.id)
        facts = self.facts(row)
        if facts["is_owner"]:
            for r in runs:  # the owner reads why a run failed: its error, cell and log
                if r["status"] not in policy.ACTIVE + ("done",):
                    full = await self.run(self.reports.store.run, r["id"])
                    r.update(error=policy.loads(full.error, None), log=full.log)
        latest = await self.run(self.reports.store.latest_good, row.id)
        self.render_page("report_history.html", runs=runs,
                         latest_id=latest.id if latest else None, **facts)


class Compare(ReportPage):
    @web.authenticated
    async def get(self, report_id):
        row = await self.report(report_id)
        run_id = self.run_argument()
        if run_id is None:
            raise web.HTTPError(400, "run: say which run to compare with the latest (?run=<id>)")
        older = await self.shown_run(row, run_id)
        latest = await self.run(self.reports.store.latest_good, row.id)
        changes = diff.changed_cells(json.loads(older.notebook), json.loads(latest.notebook)) \
            if latest else []
        self.render_page("report_compare.html", older=run_json(older), changes=changes,
                         latest=run_json(latest) if latest else None, **self.facts(row))


class RenderedRun(ReportAccess, Rendered):
    """A run's executed notebook through the share renderer and its sandboxed headers;
    a run never changes once final, so its rendering is cached like a share version."""

    @web.authenticated
    async def get(self, report_id):
        row = await self.report(report_id)
        run_id = self.get_argument("run", "")
        if not RUN_ID.match(run_id):
            raise web.HTTPError(404, "run not found")
        run = await self.shown_run(row, run_id)
        cache = self.settings["render_cache"]
        key = (f"report-run:{run.id}", 0)
        cached = cache.get(key)
        if cached is None:
            html = await self._render_run(run, row.title or row.path)
            cached = await self.run(render.Rendering.of, html)
            if run.status in policy.FINAL:
                cache.put(key, cached)
        self.send_rendering(cached)

    async def _render_run(self, run, title: str) -> bytes:
        try:
            document, _ = await self.run(render.render, run.notebook, title=title)
            return document
        except Exception as e:
            self.log.warning("report run %s not rendered: %s", run.id, e)
            return render.render_error("This notebook could not be rendered.")


ROUTES = [
    (f"r/{ID}", Viewer),
    (f"r/{ID}/render", RenderedRun),
    (f"r/{ID}/history", History),
    (f"r/{ID}/compare", Compare),
]
