"""HTTP handlers of the execution extension: parse, authorise, delegate to the Runner.

Under ``{base_url}api/civis/execute``:

- ``POST  ``                    start a run → 202 + status (``id``); body ``ExecuteRequest``
- ``GET   ``                    this server's runs (running first), as the status page lists them
- ``GET   /<id>``               status (``state``, ``cell`` of ``cells``, ``error``…);
                                ``?wait=S&version=V`` waits up to S s for a change after V
- ``GET   /<id>/notebook``      the executed notebook (also of a failed run, up to its error)
- ``POST  /<id>/cancel``        cancel (also ``DELETE /<id>``)

Only the server's owner and ``ExecutionApp.allowed_services`` may call them;
state changes need a token or the XSRF token (jupyter-server's own check).
"""

from __future__ import annotations

import json
import os

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import ensure_async
from tornado import web

from jupyterhub_civis.errors import InvalidInput
from jupyterhub_civis.execution import parameters as params
from jupyterhub_civis.protocol import EXECUTE_PATH, parse_execute_request

AUTH_RESOURCE = "civis_execute"


def may_execute(hub_user: dict | None, owner: str | None, services) -> bool:
    """Owner-only rule (pure): outside JupyterHub (no hub identity) the server's token
    holder is its owner; under it, the owner's own identity or an allowed service."""
    if hub_user is None:
        return True
    kind, name = hub_user.get("kind", "user"), hub_user.get("name")
    if kind == "service":
        return name in services
    return kind == "user" and name == owner


class _Base(APIHandler):
    auth_resource = AUTH_RESOURCE

    def initialize(self, app):
        self.app = app

    @property
    def runner(self):
        return self.app.runner

    def owner_only(self):
        hub_user = getattr(self.current_user, "hub_user", None)
        if not may_execute(hub_user, os.environ.get("JUPYTERHUB_USER"), self.app.allowed_services):
            raise web.HTTPError(403, "only this server's owner may run notebooks here")

    def execution(self, execution_id):
        self.owner_only()
        execution = self.runner.executions.get(execution_id)
        if execution is None:
            raise web.HTTPError(404, f"no run {execution_id} on this server")
        return execution

    def bad_request(self, error: InvalidInput):
        self.set_status(400)
        self.finish({"message": str(error), "field": error.field})


class ExecutionsHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self):
        self.owner_only()
        runs = sorted(self.runner.executions.values(), key=lambda e: (e.state != "running", -e.started))
        self.finish({"runs": [e.to_json() for e in runs]})

    @web.authenticated
    @authorized
    async def post(self):
        self.owner_only()
        try:
            request = parse_execute_request(self.request.body)
            if request.timeout is not None and request.timeout > self.app.max_timeout:
                raise InvalidInput("body.timeout", f"at most {self.app.max_timeout:g} seconds")
            nb = request.notebook if request.notebook is not None else await self._saved(request.path)
            params.check_notebook(nb)
            values = params.validate(nb, request.parameters)
            params.injected_source(values)  # proves the injected cell is literals only
        except InvalidInput as e:
            return self.bad_request(e)
        self.runner.queries = self.app.query_manager()
        execution = self.runner.start(
            request.path, nb, values, request.mode, request.timeout or self.app.default_timeout
        )
        self.set_status(202)
        self.finish(execution.to_json())

    async def _saved(self, path: str) -> dict:
        cm = self.serverapp.contents_manager
        if not await ensure_async(cm.file_exists(path)):
            raise InvalidInput("body.path", f"no notebook at {path!r}; send it as 'notebook'")
        model = await ensure_async(cm.get(path, content=True, type="notebook"))
        return json.loads(json.dumps(model["content"]))


class ExecutionHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self, execution_id):
        execution = self.execution(execution_id)
        wait = self.get_query_argument("wait", None)
        if wait is not None:
            try:
                timeout = min(max(float(wait), 0.0), 60.0)
                version = int(self.get_query_argument("version", str(execution.version)))
            except ValueError:
                return self.bad_request(InvalidInput("wait", "wait and version must be numbers"))
            await execution.wait(version, timeout)
        self.finish(execution.to_json())

    @web.authenticated
    @authorized
    async def delete(self, execution_id):
        execution = self.execution(execution_id)
        await self.runner.cancel(execution)
        self.finish(execution.to_json())


class CancelHandler(ExecutionHandler):
    @web.authenticated
    @authorized
    async def post(self, execution_id):
        await self.delete(execution_id)


class NotebookHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self, execution_id):
        execution = self.execution(execution_id)
        if execution.state == "running":
            self.set_status(409)
            return self.finish({"message": "the run is still going", "state": execution.state})
        self.finish({"run": execution.to_json(), "notebook": execution.executed_notebook()})


def handlers(app) -> list[tuple]:
    kw = {"app": app}
    rid = r"([0-9a-f]{32})"
    base = "/" + EXECUTE_PATH
    return [
        (base, ExecutionsHandler, kw),
        (rf"{base}/{rid}", ExecutionHandler, kw),
        (rf"{base}/{rid}/cancel", CancelHandler, kw),
        (rf"{base}/{rid}/notebook", NotebookHandler, kw),
    ]
