"""The reports REST API under the service prefix (thin: parse, authorise, delegate).

- ``GET  api/reports``                           reports the caller owns or views
- ``POST api/reports``                           create from a notebook (``ReportRequest``) → 201
                                                 (with its ``url``; its share has the same id)
- ``GET  api/reports/running``                   the caller's runs queued or going (status page)
- ``GET  api/reports/<id>``                      the report, its latest successful run, the run going
- ``PATCH api/reports/<id>``                     owner: change the refresh policy (``ReportChange``)
- ``DELETE api/reports/<id>``                    owner: delete the report and its runs → 204
- ``GET  api/reports/<id>/latest``               the latest successful run with its executed notebook
- ``GET  api/reports/<id>/runs``                 history, newest first
- ``POST api/reports/<id>/runs``                 refresh now (``RunRequest``) → 202, or 200 + the run going
- ``GET  api/reports/<id>/runs/<run>``           one run (its error and log for the owner)
- ``GET  api/reports/<id>/runs/<run>/notebook``  that run's executed notebook
- ``POST api/reports/<id>/runs/<run>/cancel``    owner: cancel → 202

Someone who may not view a report gets 404, as for one that does not exist; a
viewer who may not refresh gets 403. Cookie callers need the XSRF token.
"""

from __future__ import annotations

import json
import time

from pydantic import ValidationError
from tornado import web

from jupyterhub_civis.errors import InvalidInput, from_validation_error
from jupyterhub_civis.execution import parameters as params
from jupyterhub_civis.service.handlers.base import APIHandler
from jupyterhub_civis.service.reports import policy, sharing
from jupyterhub_civis.service.reports.access import ReportAccess
from jupyterhub_civis.service.reports.store import report_json, run_json
from jupyterhub_civis.service.shares import policy as share_policy

ID = r"([0-9a-f]{32})"
DRAIN_BYTES = 64 << 20


def _parse(model, body: bytes):
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as e:
        if e.errors(include_url=False)[0]["type"].startswith("json_"):
            raise InvalidInput("body", "is not valid JSON (or nests too deeply)") from None
        raise from_validation_error(e) from None


class _Base(ReportAccess, APIHandler):
    def checked(self, fn, *args):
        try:
            return fn(*args)
        except InvalidInput as e:
            raise web.HTTPError(400, str(e)) from None


@web.stream_request_body
class ReportsHandler(_Base):
    """Notebooks with outputs outgrow the service's 1 MiB default body: this route takes
    up to ``Reports.max_notebook_bytes`` (a larger declared body is a 413 before it is read)."""

    _chunks: list[bytes]
    _size = 0

    async def prepare(self):
        await super().prepare()
        self._chunks = []
        if self.request.method == "POST":
            self.require_user()
            limit = self.reports.max_notebook_bytes
            # a body past the limit is read and dropped, then answered 413: the hub's proxy
            # turns an answer that cuts a body off into a 503
            self.request.connection.set_max_body_size(limit + DRAIN_BYTES)
            if int(self.request.headers.get("Content-Length") or 0) > limit + DRAIN_BYTES:
                raise self.too_large()

    def too_large(self) -> web.HTTPError:
        limit = self.reports.max_notebook_bytes
        return web.HTTPError(413, f"a report's notebook may have at most {limit} bytes")

    def data_received(self, chunk):
        self._size += len(chunk)
        if self._size <= self.reports.max_notebook_bytes:
            self._chunks.append(chunk)
        else:
            self._chunks = []

    async def get(self):
        user = self.require_user()
        shared = await self.run(self.settings["shares"].list_shared_with, user, self.caller.groups)
        ids = [info.id for info in shared if info.kind == sharing.KIND]
        self.write_json({"reports": await self.run(self.reports.store.listed, user, ids)})

    async def post(self):
        user = self.require_user()
        if self._size > self.reports.max_notebook_bytes:
            raise self.too_large()
        request = self.checked(_parse, policy.ReportRequest, b"".join(self._chunks))
        self.checked(params.check_notebook, request.notebook, "notebook")
        self.checked(params.validate, request.notebook, request.parameters)
        refusal = share_policy.expiry_refusal(request.expires, time.time())
        if refusal:
            raise web.HTTPError(400, refusal)
        settings = self.reports
        report = await self.run(self.checked_create, user, request, settings.default_timeout)
        report["url"] = f"{self.settings['service_prefix']}r/{report['id']}"
        self.write_json(report, status=201)

    def checked_create(self, user, request, timeout):
        return self.checked(self.reports.store.create, user, request, timeout)


class RunningHandler(_Base):
    async def get(self):
        user = self.require_user()
        self.write_json({"runs": await self.run(self.reports.store.running, user)})


class ReportHandler(_Base):
    async def get(self, report_id):
        row = await self.report(report_id)
        latest, active = await self.view(row)
        self.write_json({
            **report_json(row),
            "latest": run_json(latest) if latest else None,
            "running": active,
        })

    async def patch(self, report_id):
        row = await self.report(report_id, "manage")
        change = self.checked(_parse, policy.ReportChange, self.request.body)
        if change.parameters:
            self.checked(params.validate, json.loads(row.notebook), change.parameters)
        self.write_json(await self.run(self.checked, self.reports.store.change, row.id, change))

    async def delete(self, report_id):
        await self.report(report_id, "manage")
        await self.run(self.reports.store.delete, report_id)
        self.set_status(204)
        self.finish()


class LatestHandler(ReportHandler):
    async def get(self, report_id):
        row = await self.report(report_id)
        latest, active = await self.view(row)
        if latest is None:
            raise web.HTTPError(404, "this report has no successful run yet")
        self.write_json({"run": run_json(latest), "running": active,
                         "notebook": json.loads(latest.notebook)})


class RunsHandler(_Base):
    async def get(self, report_id):
        row = await self.report(report_id)
        runs = await self.run(self.reports.store.runs, report_id)
        if self.caller.user != row.owner:
            for run in runs:
                run.pop("parameters", None)
        self.write_json({"runs": runs})

    async def post(self, report_id):
        row = await self.report(report_id, "refresh")
        request = self.checked(_parse, policy.RunRequest, self.request.body)
        values = None
        if request.parameters is not None:
            values = self.checked(params.validate, json.loads(row.notebook), request.parameters)
            values = {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in values.items()}
        run = await self.reports.start_run(row.id, "user", self.caller.user, values)
        self.write_json(run, status=200 if run["joined"] else 202)


class RunHandler(_Base):
    async def get(self, report_id, run_id):
        report, run = await self.report_run(report_id, run_id)
        self.write_json(run_json(run, detail=self.caller.user == report.owner))


class RunNotebookHandler(_Base):
    async def get(self, report_id, run_id):
        report, run = await self.report_run(report_id, run_id)
        if run.notebook is None or (run.status != "done" and self.caller.user != report.owner):
            raise web.HTTPError(404, "this run has no executed notebook")
        self.write_json({"run": run_json(run), "notebook": json.loads(run.notebook)})


class CancelHandler(_Base):
    async def post(self, report_id, run_id):
        await self.report_run(report_id, run_id, "manage")
        await self.run(self.reports.store.request_cancel, run_id)
        run = await self.run(self.reports.store.run, run_id)
        self.write_json(run_json(run, detail=True), status=202)


ROUTES = [
    ("api/reports", ReportsHandler),
    ("api/reports/running", RunningHandler),
    (f"api/reports/{ID}", ReportHandler),
    (f"api/reports/{ID}/latest", LatestHandler),
    (f"api/reports/{ID}/runs", RunsHandler),
    (f"api/reports/{ID}/runs/{ID}", RunHandler),
    (f"api/reports/{ID}/runs/{ID}/notebook", RunNotebookHandler),
    (f"api/reports/{ID}/runs/{ID}/cancel", CancelHandler),
]
