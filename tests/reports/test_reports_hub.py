"""Report links end to end: a real hub, the civis service (its runner starting the owner's
named server through the Hub API), real single-user servers running the notebook, a real
PostgreSQL warehouse."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import uuid

import pytest
import sqlalchemy as sa
from civis_service_support import wait_service
from civis_test_support import free_port, processes_under, wait_for
from report_support import ReportsAPI, notebook, outputs, query_cell, report_hub_config

pytestmark = pytest.mark.hub

PARAMS = "region = 'west'\nfail = False"


def report_notebook(table: str, *extra: str) -> dict:
    return notebook(query_cell(table), "assert not fail, 'asked to fail'", *extra, parameters=PARAMS)


def rows(nb: dict) -> list:
    return json.loads(outputs(nb)[1])


@pytest.fixture(scope="module")
def people(report_hub):
    def person(prefix):
        name = report_hub.create_user(prefix)
        return name, ReportsAPI(report_hub, report_hub.user_token(name))

    return {role: person(role) for role in ("owner", "viewer", "stranger")}


def test_refresh_runs_in_the_owners_server_and_every_run_is_kept(report_hub, people, warehouse):
    owner, api = people["owner"]
    viewer, viewer_api = people["viewer"]
    _, stranger_api = people["stranger"]
    table = warehouse.table({"west": 1, "east": 2})
    report = api.create(report_notebook(table), viewers=[viewer], title="Sales")
    assert report["owner"] == owner and report["environment"] == {"environment": "python"}
    assert api.request("GET", f"/{report['id']}/latest").status_code == 404  # no run yet

    first = api.refresh(report["id"])
    assert first["status"] == "queued" and first["trigger"] == "user" and first["triggered_by"] == owner
    first = api.wait_final(report["id"], first["id"])
    assert first["status"] == "done", first
    assert first["cells"] == 3 and first["duration"] > 0  # no values given: nothing injected
    assert rows(api.run_notebook(report["id"], first["id"])) == [{"region": "west", "amount": 1}]
    # the run's result is pinned by the run in the owner's store
    (result_id,) = first["result_ids"]
    results = report_hub.session.get(
        report_hub.service + "api/results", headers={"Authorization": f"token {api.token}"}, timeout=30
    ).json()["results"]
    pinned = {r["id"]: r["pins"] for r in results}
    assert f"report-run:{first['id']}" in pinned[result_id]
    # the report's server is stopped and removed once the run is final
    wait_for(lambda: report_hub.server(owner, f"report-{report['id'][:12]}") is None,
             timeout=60, message="the report server removed")

    # the data changes: the latest run shows it, the first run still shows the old data
    warehouse.execute(f"update {table} set amount = 10 where region = 'west'")
    second = api.wait_final(report["id"], api.refresh(report["id"])["id"])
    assert second["status"] == "done" and second["result_ids"] != first["result_ids"]
    latest = viewer_api.request("GET", f"/{report['id']}/latest").json()
    assert latest["run"]["id"] == second["id"]
    assert rows(latest["notebook"]) == [{"region": "west", "amount": 10}]
    assert rows(viewer_api.run_notebook(report["id"], first["id"])) == [{"region": "west", "amount": 1}]
    history = viewer_api.request("GET", f"/{report['id']}/runs").json()["runs"]
    assert [r["number"] for r in history] == [2, 1]

    # a viewer may read but not refresh; anyone else does not see the report at all
    r = viewer_api.request("POST", f"/{report['id']}/runs", json={})
    assert r.status_code == 403, r.text
    for method, path in [("GET", ""), ("GET", "/latest"), ("GET", "/runs"), ("POST", "/runs")]:
        r = stranger_api.request(method, f"/{report['id']}{path}", json={} if method == "POST" else None)
        assert r.status_code == 404 and r.json()["message"] == "report not found", (path, r.text)
    assert [x["id"] for x in viewer_api.request("GET").json()["reports"]] == [report["id"]]
    assert stranger_api.request("GET").json()["reports"] == []

    # a failed run (owner's parameter) keeps the last good run visible; the owner sees why
    failed = api.wait_final(report["id"], api.refresh(report["id"], parameters={"fail": True})["id"])
    assert failed["status"] == "failed", failed
    assert failed["error"]["cell"] == 4  # after the injected cell
    assert failed["parameters"] == {"fail": True}
    assert "asked to fail" in failed["error"]["output"]
    assert "starting server" in failed["log"]
    seen_by_viewer = viewer_api.run(report["id"], failed["id"])
    assert "error" not in seen_by_viewer and "log" not in seen_by_viewer
    assert viewer_api.request("GET", f"/{report['id']}/latest").json()["run"]["id"] == second["id"]


def test_ten_concurrent_refreshes_are_one_run_and_cancel(report_hub, people, warehouse, tmp_path):
    owner, api = people["owner"]
    flag = tmp_path / f"go-{uuid.uuid4().hex}"
    wait_cell = f"import os, time\nwhile not os.path.exists({str(flag)!r}):\n    time.sleep(0.05)"
    report = api.create(report_notebook(warehouse.table({"west": 3}), wait_cell))
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        runs = list(pool.map(lambda _: api.refresh(report["id"]), range(10)))
    assert len({r["id"] for r in runs}) == 1
    assert sum(not r["joined"] for r in runs) == 1
    run_id = runs[0]["id"]
    # progress is visible while it runs: cell 4 of 4 waits for the flag
    running = wait_for(
        lambda: (r := api.run(report["id"], run_id))["cell"] == 4 and r, timeout=240,
        message="the run at its 4th cell",
    )
    assert running["status"] == "running" and running["cells"] == 4
    going = api.request("GET", "/running").json()["runs"]
    assert [(g["id"], g["cell"], g["cells"]) for g in going] == [(run_id, 4, 4)]

    r = api.request("POST", f"/{report['id']}/runs/{run_id}/cancel")
    assert r.status_code == 202, r.text
    cancelled = api.wait_final(report["id"], run_id)
    assert cancelled["status"] == "cancelled", cancelled
    assert len(api.request("GET", f"/{report['id']}/runs").json()["runs"]) == 1
    flag.write_text("go")


def test_parameters_are_validated_by_the_service(report_hub, people, warehouse):
    _, api = people["owner"]
    report = api.create(report_notebook(warehouse.table({"west": 1})))
    for values, field in [
        ({"region": 1}, "parameters.region"),
        ({"fail": "__import__('os')"}, "parameters.fail"),
        ({"nope": 1}, "parameters.nope"),
    ]:
        r = api.request("POST", f"/{report['id']}/runs", json={"parameters": values})
        assert r.status_code == 400 and r.json()["message"].startswith(field), r.text
    r = api.request("POST", json={"path": "x.ipynb", "notebook": report_notebook("t"),
                                  "parameters": {"region": ["west"]}})
    assert r.status_code == 400 and r.json()["message"].startswith("parameters.region"), r.text
    r = api.request("POST", json={"path": "x.ipynb", "notebook": report_notebook("t"),
                                  "schedule": {"cron": "every day", "timezone": "UTC"}})
    assert r.status_code == 400 and r.json()["message"].startswith("schedule.cron"), r.text
    r = api.request("POST", json={"path": "x.ipynb", "notebook": {"cells": [{"cell_type": "evil"}]}})
    assert r.status_code == 400 and r.json()["message"].startswith("notebook"), r.text
    r = api.request("POST", json={"path": "../x.ipynb", "notebook": report_notebook("t")})
    assert r.status_code == 400 and r.json()["message"].startswith("path"), r.text
    r = api.request("POST", json={"path": "x.ipynb", "notebook": report_notebook("t"),
                                  "expires": 1_000_000})
    assert r.status_code == 400 and r.json()["message"].startswith("expires"), r.text
    assert len(api.request("GET", f"/{report['id']}/runs").json()["runs"]) == 0
    # a notebook with outputs larger than the service's default 1 MiB body is accepted
    big = report_notebook("t")
    big["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "x" * (3 << 20)}]
    assert api.request("POST", json={"path": "big.ipynb", "notebook": big}).status_code == 201
    r = api.request("POST", data=b"{" + b" " * (65 << 20) + b"}",
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text


def test_a_schedule_fires_and_a_killed_runner_fails_its_run(report_hub, people, warehouse, tmp_path):
    owner, api = people["owner"]
    flag = tmp_path / f"go-{uuid.uuid4().hex}"
    wait_cell = f"import os, time\nwhile not os.path.exists({str(flag)!r}):\n    time.sleep(0.05)"
    report = api.create(
        report_notebook(warehouse.table({"west": 5}), wait_cell),
        schedule={"cron": "0 7 * * *", "timezone": "America/New_York"},
    )
    assert report["next_fire"] > 0
    # the schedule's fire time comes: move it to now in the service's database
    engine = sa.create_engine(f"sqlite:///{report_hub.service_db}")
    with engine.begin() as conn:
        conn.execute(sa.text("update civis_reports set next_fire = 1 where id = :id"), {"id": report["id"]})
    fired = wait_for(
        lambda: (runs := api.request("GET", f"/{report['id']}/runs").json()["runs"])
        and runs[0]["cell"] == 4 and runs[0], timeout=240, message="the scheduled run at its wait",
    )
    assert fired["trigger"] == "schedule" and fired["status"] == "running"
    assert api.request("GET", f"/{report['id']}").json()["next_fire"] > 1

    # the service is SIGKILLed mid-run; the hub restarts it; the run is marked failed
    (pid,) = [int(p.split(":")[0]) for p in processes_under(report_hub.state_dir)
              if "jupyterhub_civis.cli service" in p]
    os.kill(pid, signal.SIGKILL)
    failed = wait_for(
        lambda: (r := api.run(report["id"], fired["id"]))["status"] == "failed" and r,
        timeout=120, message="the abandoned run marked failed",
    )
    assert "runner stopped" in failed["error"]["message"]
    flag.write_text("go")
    # the next run works (and reuses or restarts the report's server)
    nxt = api.wait_final(report["id"], api.refresh(report["id"])["id"])
    assert nxt["status"] == "done", nxt
    engine.dispose()


def test_refresh_on_view_and_audience_refresh(report_hub, people, warehouse):
    owner, api = people["owner"]
    viewer, viewer_api = people["viewer"]
    report = api.create(
        report_notebook(warehouse.table({"west": 7})),
        viewers=[viewer], on_demand="audience", refresh_after=3600,
    )
    # the first view of a report without a fresh run starts one, for that viewer
    seen = viewer_api.request("GET", f"/{report['id']}").json()
    assert seen["latest"] is None and seen["running"]["trigger"] == "view"
    assert seen["running"]["triggered_by"] == viewer
    done = viewer_api.wait_final(report["id"], seen["running"]["id"])
    assert done["status"] == "done", done
    # fresh now: another view starts nothing
    again = viewer_api.request("GET", f"/{report['id']}").json()
    assert again["latest"]["id"] == done["id"] and again["running"] is None
    # the audience may refresh on demand, with typed values from its form
    run = viewer_api.refresh(report["id"], parameters={"region": "west"})
    assert run["triggered_by"] == viewer
    finished = viewer_api.wait_final(report["id"], run["id"])
    assert finished["status"] == "done", api.run(report["id"], run["id"])
    assert rows_after_injection(viewer_api.run_notebook(report["id"], run["id"])) == [
        {"region": "west", "amount": 7}
    ]
    # the owner alone cancels and deletes
    assert viewer_api.request("POST", f"/{report['id']}/runs/{run['id']}/cancel").status_code == 403
    assert viewer_api.request("DELETE", f"/{report['id']}").status_code == 403
    assert api.request("DELETE", f"/{report['id']}").status_code == 204
    assert viewer_api.request("GET", f"/{report['id']}").status_code == 404


def rows_after_injection(nb: dict) -> list:
    return json.loads(outputs(nb)[2])


def test_keep_warm_reuses_the_report_server_then_stops_it(hub_factory, warehouse):

    port = free_port()
    args = [f"--data-dir={hub_factory.tmp_path / 'warm-data'}", "--Reports.keep_warm_seconds=20",
            "--Reports.poll_seconds=1"]
    hub = hub_factory(report_hub_config(port, args), env={"CIVIS_DEMO_WAREHOUSE_URL": warehouse.url},
                      name="warm").hub
    wait_service(f"http://127.0.0.1:{port}/services/civis/")
    owner = hub.create_user("warm")
    api = ReportsAPI(hub, hub.user_token(owner))
    report = api.create(report_notebook(warehouse.table({"west": 1})))
    server = f"report-{report['id'][:12]}"
    first = api.wait_final(report["id"], api.refresh(report["id"])["id"])
    assert first["status"] == "done", first
    warm = hub.server(owner, server)
    assert warm and warm["ready"]  # kept warm after the run
    second = api.wait_final(report["id"], api.refresh(report["id"])["id"])
    assert second["status"] == "done", second
    assert hub.server(owner, server)["started"] == warm["started"]  # the same server, reused
    wait_for(lambda: hub.server(owner, server) is None, timeout=120, message="the warm server stopped")
