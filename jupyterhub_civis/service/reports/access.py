"""What every report handler (REST API and pages) has in common: the report store
and one lookup that answers a missing or not-yours report with the same 404."""

from __future__ import annotations

from tornado import web

from jupyterhub_civis.service.reports import policy
from jupyterhub_civis.service.reports.store import NotFound
from jupyterhub_civis.service.shares.store import ShareNotFound


class ReportAccess:
    """Mixed into a service handler that has ``run``, ``caller`` and ``require_user``."""

    @property
    def reports(self):
        return self.settings["reports"]

    async def viewer(self, row) -> bool:
        """Whether the report's share lets the caller see it (the owner: always)."""
        user = self.caller.user
        if policy.may_manage(row.owner, user):
            return True
        try:
            await self.run(self.settings["shares"].for_viewer, user, self.caller.groups, row.id)
        except ShareNotFound:
            return False
        return True

    async def report(self, report_id, need="view"):
        """The report if the caller may ``need`` ("view", "refresh", "manage") it."""
        user = self.require_user()
        try:
            row = await self.run(self.reports.store.get, report_id)
        except NotFound:
            raise web.HTTPError(404, policy.NOT_FOUND) from None
        if not await self.viewer(row):
            raise web.HTTPError(404, policy.NOT_FOUND)
        if need == "refresh" and not policy.may_refresh(row.owner, row.on_demand, user):
            raise web.HTTPError(403, "only the report's owner may refresh it")
        if need == "manage" and not policy.may_manage(row.owner, user):
            raise web.HTTPError(403, "only the report's owner may do this")
        return row

    async def report_run(self, report_id, run_id, need="view"):
        report = await self.report(report_id, need)
        try:
            run = await self.run(self.reports.store.run, run_id)
        except NotFound:
            raise web.HTTPError(404, "run not found") from None
        if run.report_id != report.id:
            raise web.HTTPError(404, "run not found")
        return report, run

    async def shown_run(self, row, run_id):
        """The run to show: ``run_id`` (if it ran to the end, or for the owner) or the latest good."""
        if run_id is None:
            return await self.run(self.reports.store.latest_good, row.id)
        _, run = await self.report_run(row.id, run_id)
        if run.notebook is None or (run.status != "done" and self.caller.user != row.owner):
            raise web.HTTPError(404, "this run has no executed notebook")
        return run

    async def view(self, row):
        """The latest good run and the run going; a stale report starts a refresh on view."""
        store = self.reports.store
        latest = await self.run(store.latest_good, row.id)
        active = await self.run(store.active_run, row.id)
        now = store.clock()
        if policy.refresh_on_view(row.refresh_after, latest.finished if latest else None,
                                  active is not None, now):
            active = await self.reports.start_run(row.id, "view", self.caller.user)
        return latest, active
