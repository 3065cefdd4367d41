"""Helpers for the report tests: a PostgreSQL warehouse, notebooks, the execution API."""

from __future__ import annotations

import time
import uuid

import nbformat
from civis_service_support import service_config
from civis_test_support import PG_ADMIN, HubServer, Postgres  # noqa: F401 (PG_ADMIN re-exported)


class Warehouse(Postgres):
    def table(self, rows: dict[str, int]) -> str:
        """A new table of (region, amount) rows."""
        name = f"sales_{uuid.uuid4().hex[:8]}"
        self.execute(f"create table {name} (region text, amount int)")
        for region, amount in rows.items():
            self.execute(f"insert into {name} values (%s, %s)", (region, amount))
        return name


def notebook(*sources: str, parameters: str | None = None, deliverable="analysis") -> dict:
    """A notebook of code cells (the first tagged ``parameters`` when given)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["jupyterhub_civis"] = {"deliverable": deliverable}
    if parameters is not None:
        nb.cells.append(nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    nb.cells.extend(nbformat.v4.new_code_cell(s) for s in sources)
    return nbformat.from_dict(nb)


def query_cell(table: str, where: str = "region = $1", args: str = "[region]") -> str:
    return (
        "from jupyterhub_civis.query_cache import query\n"
        f"df = query('select region, amount from {table} where {where} order by region', {args})\n"
        "print(df.to_json(orient='records'))"
    )


class Executor:
    """The execution API of one named server, called with ``token`` (the owner's by default)."""

    def __init__(self, server: HubServer, token: str):
        self.server, self.token = server, token

    def request(self, method, path="", token=None, **kw):
        headers = {"Authorization": f"token {token or self.token}", **kw.pop("headers", {})}
        url = self.server.base + "api/civis/execute" + path
        return self.server.hub.session.request(method, url, headers=headers, timeout=120, **kw)

    def start(self, nb, path="reports/r.ipynb", **body):
        r = self.request("POST", json={"path": path, "notebook": nb, **body})
        assert r.status_code == 202, r.text
        return r.json()

    def status(self, run_id, **params):
        r = self.request("GET", f"/{run_id}", params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def wait_final(self, run, timeout=180):
        deadline = time.monotonic() + timeout
        while run["state"] == "running":
            assert time.monotonic() < deadline, run
            run = self.status(run["id"], wait=10, version=run["version"])
        return run

    def run(self, nb, **body):
        return self.wait_final(self.start(nb, **body))

    def executed(self, run_id) -> dict:
        r = self.request("GET", f"/{run_id}/notebook")
        assert r.status_code == 200, r.text
        return r.json()["notebook"]


def outputs(nb: dict) -> list[str]:
    """Each code cell's printed text."""
    return [
        "".join(o.get("text", "") for o in c["outputs"] if o["output_type"] == "stream")
        for c in nb["cells"]
        if c["cell_type"] == "code"
    ]


class ReportsAPI:
    """The service's reports API, as the holder of ``token`` sees it (through the hub's proxy)."""

    def __init__(self, hub, token: str):
        self.hub, self.token = hub, token
        self.base = hub.url + "/services/civis/api/reports"

    def request(self, method, path="", **kw):
        headers = {"Authorization": f"token {self.token}", **kw.pop("headers", {})}
        return self.hub.session.request(method, self.base + path, headers=headers, timeout=120, **kw)

    def create(self, nb, **body) -> dict:
        r = self.request("POST", json={"path": "reports/sales.ipynb", "notebook": nb,
                                       "environment": {"environment": "python"}, **body})
        assert r.status_code == 201, r.text
        return r.json()

    def refresh(self, report_id, **body) -> dict:
        r = self.request("POST", f"/{report_id}/runs", json=body)
        assert r.status_code in (200, 202), r.text
        return r.json()

    def run(self, report_id, run_id) -> dict:
        r = self.request("GET", f"/{report_id}/runs/{run_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_final(self, report_id, run_id, timeout=240) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(report_id, run_id)
            if run["status"] not in ("queued", "running"):
                return run
            assert time.monotonic() < deadline, run
            time.sleep(0.2)

    def run_notebook(self, report_id, run_id) -> dict:
        r = self.request("GET", f"/{report_id}/runs/{run_id}/notebook")
        assert r.status_code == 200, r.text
        return r.json()["notebook"]


def people(hub, roles) -> dict[str, tuple[str, ReportsAPI]]:
    """A new user per role (the role is the name's prefix) with a reports API client."""
    def person(prefix):
        name = hub.create_user(prefix)
        return name, ReportsAPI(hub, hub.user_token(name))

    return {role: person(role) for role in roles}


def report_hub_config(service_port: int, service_args: list[str]) -> str:
    return (
        service_config(service_port, service_args)
        + "from jupyterhub_civis.service.hubconfig import declare_reports\n"
        + "declare_reports(c)\n"
    )
