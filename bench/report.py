"""One report refresh end to end, next to ``jupyter nbconvert --execute`` of the same notebook.

Runs on this machine, side by side in one run, against a real JupyterHub (the
bundle's local config), the civis service (report runner on) and a real
PostgreSQL warehouse:

1. ``refresh``: ``POST /services/civis/api/reports/<id>/runs`` until the run is
   done — the service starts the owner's named report server through the Hub
   API, runs the 20-cell notebook (three warehouse queries, refresh mode) with
   nbclient there, collects and stores the executed notebook, stops the server;
2. ``nbconvert``: ``jupyter nbconvert --to notebook --execute`` of the same
   notebook in the same environment, its queries going through the owner's
   running server's query cache (``CIVIS_QUERY_CACHE_URL``) — no server start;
3. ``scheduled``: 10 reports (10 owners) whose schedule fires in the same
   minute; how many runs finish ``done``.

Runs alternate (refresh, nbconvert, …). The last line is
``run_vs_nbconvert=<refresh median / nbconvert median> scheduled_ok=<done>/<total>``.

    .venv/bin/python bench/report.py [--runs 3] [--scheduled 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import nbformat
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from civis_service_support import service_config, wait_service  # noqa: E402
from civis_test_support import HubRun, free_port, wait_for  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def make_notebook(table: str) -> dict:
    """20 code cells, three of them warehouse queries."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["jupyterhub_civis"] = {"deliverable": "report"}
    cells = ["region = 'west'", "from jupyterhub_civis.query_cache import query"]
    queries = [
        f"a = query('select region, sum(amount) as total from {table} group by region')",
        f"b = query('select * from {table} where region = $1', [region])",
        f"c = query('select count(*) as n, avg(amount) as mean from {table}')",
    ]
    for i in range(18):
        cells.append(queries[i // 6] if i % 6 == 0 else f"x{i} = sum(range({1000 * (i + 1)}))\nprint(x{i})")
    nb.cells = [nbformat.v4.new_code_cell(c, metadata={"tags": ["parameters"]} if i == 0 else {})
                for i, c in enumerate(cells)]
    assert len(nb.cells) == 20 and sum("query(" in c for c in cells) == 3
    return json.loads(nbformat.writes(nb))


def warehouse():
    name = f"civis_bench_report_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'create database "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("create table sales as select (array['west','east','north'])[1 + g % 3] as region,"
                  " g as amount from generate_series(1, 50000) g")
    return name, url


class Api:
    def __init__(self, hub, token):
        self.hub, self.headers = hub, {"Authorization": f"token {token}"}
        self.base = hub.url + "/services/civis/api/reports"

    def call(self, method, path="", **kw):
        r = self.hub.session.request(method, self.base + path, headers=self.headers, timeout=300, **kw)
        assert r.status_code < 300, r.text
        return r.json()

    def create(self, nb, **body):
        return self.call("POST", json={"path": "bench/report.ipynb", "notebook": nb,
                                       "environment": {"environment": "python"}, **body})

    def wait(self, report_id, run_id, timeout=600):
        return wait_for(
            lambda: (r := self.call("GET", f"/{report_id}/runs/{run_id}"))["status"]
            not in ("queued", "running") and r,
            timeout=timeout, interval=0.05, message="the report run",
        )


def refresh(api, report_id) -> float:
    started = time.perf_counter()
    run = api.call("POST", f"/{report_id}/runs", json={})
    run = api.wait(report_id, run["id"])
    assert run["status"] == "done", run
    return time.perf_counter() - started


def nbconvert(nb, workdir: Path, server_url: str, token: str) -> float:
    path = workdir / f"bench-{uuid.uuid4().hex[:6]}.ipynb"
    path.write_text(json.dumps(nb))
    env = {**os.environ, "CIVIS_QUERY_CACHE_URL": server_url, "CIVIS_QUERY_CACHE_TOKEN": token}
    started = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).parent / "jupyter"), "nbconvert", "--to", "notebook", "--execute",
         "--output", str(path.with_suffix(".out.ipynb")), str(path)],
        check=True, env=env, capture_output=True,
    )
    return time.perf_counter() - started


def scheduled(hub, nb, count: int) -> int:
    """``count`` reports of ``count`` owners, all due in the next minute."""
    apis, reports = [], []
    for i in range(count):
        user = hub.create_user(f"sched{i}")
        api = Api(hub, hub.user_token(user))
        reports.append(api.create(nb, schedule={"cron": "* * * * *", "timezone": "UTC"}))
        apis.append(api)
    fire = min(r["next_fire"] for r in reports)
    assert all(r["next_fire"] == fire for r in reports), "the reports straddle a minute; run again"

    def finished():
        runs = [api.call("GET", f"/{r['id']}/runs")["runs"] for api, r in zip(apis, reports, strict=True)]
        if all(rs and rs[-1]["status"] not in ("queued", "running") for rs in runs):
            return runs
        return None

    runs = wait_for(finished, timeout=max(fire - time.time(), 0) + 900, interval=0.5,
                    message="the scheduled runs")
    return sum(rs[-1]["status"] == "done" and rs[-1]["trigger"] == "schedule" for rs in runs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scheduled", type=int, default=10)
    args = parser.parse_args()
    dbname, db_url = warehouse()
    with tempfile.TemporaryDirectory(prefix="civis-bench-report-") as tmp:
        state = Path(tmp)
        port = free_port()
        config = (
            service_config(port, [f"--data-dir={state / 'civis-data'}", "--Reports.schedule_interval=1",
                                  "--Reports.poll_seconds=1"])
            + "from jupyterhub_civis.service.hubconfig import declare_reports\ndeclare_reports(c)\n"
            + "c.JupyterHub.named_server_limit_per_user = 0\n"
        )
        run = HubRun(state / "hub", config, env={"CIVIS_DEMO_WAREHOUSE_URL": db_url})
        hub = run.start()
        try:
            wait_service(f"http://127.0.0.1:{port}/services/civis/")
            owner = hub.create_user("owner")
            token = hub.user_token(owner)
            api = Api(hub, token)
            nb = make_notebook("sales")
            report = api.create(nb)
            hub.start_and_wait(owner, "nbconvert", {"environment": "python"})
            server_url = f"{hub.url}/user/{owner}/nbconvert/"
            refresh(api, report["id"])  # warm-up: first import of everything
            nbconvert(nb, state, server_url, token)
            refreshes, converts = [], []
            for _ in range(args.runs):
                refreshes.append(refresh(api, report["id"]))
                converts.append(nbconvert(nb, state, server_url, token))
            ok = scheduled(hub, nb, args.scheduled)
        finally:
            run.stop()
            with psycopg.connect(PG_ADMIN, autocommit=True) as c:
                c.execute(f'drop database if exists "{dbname}" with (force)')
    r, n = statistics.median(refreshes), statistics.median(converts)
    print(f"refresh (server start + run + collect + stop): median {r:.2f} s  {[round(x, 2) for x in refreshes]}")
    print(f"jupyter nbconvert --execute:                   median {n:.2f} s  {[round(x, 2) for x in converts]}")
    print(f"run_vs_nbconvert={r / n:.2f} scheduled_ok={ok}/{args.scheduled}")


if __name__ == "__main__":
    main()
