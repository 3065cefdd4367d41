"""A report is a share: its runs are the share's versions. Through a real hub, real
servers, a real PostgreSQL warehouse and Chromium: another user opens run 1 of a report
as a copy (from the history page), and re-running the copy with the warehouse stopped
gives run 1's outputs — its queries read the results run 1 pinned, through the report.
The share's audience rules (users, groups, the one 404, revocation) apply to reports."""

from __future__ import annotations

import re

import pytest
from civis_service_support import logged_in_page
from civis_test_support import HubServer
from playwright.sync_api import expect
from report_support import Executor, ReportsAPI, notebook, outputs, query_cell
from report_support import people as make_people

pytestmark = [pytest.mark.hub, pytest.mark.browser]

PARAMS = "region = 'west'"
LONG = 240_000  # ms: a copy starts a server for the viewer


@pytest.fixture(scope="module")
def people(report_hub):
    return make_people(report_hub, ("cowner", "cviewer", "cmember", "cstranger"))


def service(hub, token):
    def call(method, path, **kw):
        return hub.session.request(method, f"{hub.url}/services/civis/{path}", timeout=60,
                                   headers={"Authorization": f"token {token}"}, **kw)
    return call


def test_open_a_past_run_as_a_copy_and_rerun_it_without_the_warehouse(
    report_hub, people, warehouse, browser
):
    hub = report_hub
    owner, api = people["cowner"]
    viewer, viewer_api = people["cviewer"]
    table = warehouse.table({"west": 1, "east": 2})
    report = api.create(notebook(query_cell(table), parameters=PARAMS), title="Sales",
                        audience={"users": [viewer]})
    rid = report["id"]
    first = api.wait_final(rid, api.refresh(rid)["id"])
    assert first["status"] == "done", first
    warehouse.execute(f"update {table} set amount = 10 where region = 'west'")
    second = api.wait_final(rid, api.refresh(rid)["id"])
    assert second["status"] == "done", second
    executed = api.run_notebook(rid, first["id"])
    assert outputs(executed)[1].strip() == '[{"region":"west","amount":1}]'

    # each successful run is a version of the report's share, carrying what it pinned
    as_owner, as_viewer = service(hub, api.token), service(hub, viewer_api.token)
    share = as_owner("GET", f"api/shares/{rid}").json()
    assert share["kind"] == "report"
    assert share["audience"] == {"users": [viewer], "groups": [], "everyone": False}
    versions = {v["number"]: v for v in share["versions"]}
    assert sorted(versions) == [1, 2]
    assert versions[1]["results"] == first["result_ids"]
    assert versions[1]["environment"]["name"] == "python"
    # the viewer reads exactly the results the runs carry, nothing else of the owner's
    assert as_viewer("GET", f"api/results/{first['result_ids'][0]}/info").status_code == 200
    private = api.create(notebook(query_cell(table), parameters=PARAMS), title="Private")
    alone = api.wait_final(private["id"], api.refresh(private["id"])["id"])
    assert alone["status"] == "done" and alone["result_ids"] != second["result_ids"]
    assert as_viewer("GET", f"api/results/{alone['result_ids'][0]}/info").status_code == 404

    # the viewer opens run 1 from the history page, as a copy
    page = logged_in_page(browser, hub, viewer)
    page.goto(f"{hub.url}/services/civis/r/{rid}/history")
    page.locator(f"tr[data-run-id='{first['id']}'] .run-copy button").click()
    page.wait_for_url(re.compile(r".*/user/.+/lab/tree/shared/sales-[0-9a-f]{8}\.ipynb$"),
                      timeout=LONG)
    copy_path = page.url.split("/lab/tree/", 1)[1]
    server_name = page.url.split(f"/user/{viewer}/", 1)[1].split("/", 1)[0]
    assert server_name.startswith("copy-")
    assert hub.server(viewer, server_name)["user_options"]["environment"] == "python"
    copy = HubServer(hub, viewer, server_name)
    copied = copy.api("GET", f"api/contents/{copy_path}").json()["content"]
    assert outputs(copied) == outputs(executed)
    events = as_owner("GET", f"api/shares/{rid}/events").json()["events"]
    assert [(e["user"], e["action"], e["number"]) for e in events if e["action"] == "copy"] == [
        (viewer, "copy", 1)
    ]

    # re-run every cell of the copy with the warehouse stopped (and its data changed):
    # run 1's outputs, read from the result run 1 pinned, through the report
    warehouse.set_reachable(False)
    try:
        rerun = Executor(copy, viewer_api.token).run(copied, path=copy_path, mode="reproducible")
        assert rerun["state"] == "done", rerun
        again = Executor(copy, viewer_api.token).executed(rerun["id"])
        assert outputs(again) == outputs(executed)
        assert rerun["result_ids"] == first["result_ids"]
    finally:
        warehouse.set_reachable(True)

    # the report page offers the same for the run it shows
    page.goto(f"{hub.url}/services/civis/r/{rid}?run={first['id']}")
    expect(page.locator("#open-copy button")).to_contain_text("run #1")

    # revoked (the share API, as any share): the report and its results are gone for the viewer
    assert as_owner("DELETE", f"api/shares/{rid}").status_code == 204
    assert viewer_api.request("GET", f"/{rid}").status_code == 404
    assert as_viewer("GET", f"api/results/{first['result_ids'][0]}/info").status_code == 404
    assert page.goto(f"{hub.url}/services/civis/r/{rid}/history").status == 404
    assert api.request("GET", f"/{rid}").status_code == 200  # the owner keeps the report


def test_group_audience_and_the_one_404(report_hub, people, warehouse):
    hub = report_hub
    owner, api = people["cowner"]
    member, member_api = people["cmember"]
    _, stranger_api = people["cstranger"]
    group = "report-readers"
    assert hub.api("POST", f"/groups/{group}", json={"users": [member]}).status_code == 201
    table = warehouse.table({"west": 3})
    nb = notebook(query_cell(table), parameters=PARAMS)
    before = api.request("GET", "").json()["reports"]
    for audience, says in (({"audience": {"groups": [group]}, "viewers": [member]}, "not both"),
                           ({"audience": {}}, "name at least one user or group"),
                           ({"audience": {"users": ["<script>"]}}, "audience.users[0]")):
        r = api.request("POST", json={"path": "r.ipynb", "notebook": nb, **audience})
        assert r.status_code == 400 and says in r.json()["message"], r.text
    assert api.request("GET", "").json()["reports"] == before  # nothing half-made
    report = api.create(notebook(query_cell(table), parameters=PARAMS),
                        audience={"groups": [group]}, on_demand="audience")
    rid = report["id"]
    assert member_api.request("GET", f"/{rid}").status_code == 200
    assert rid in [r["id"] for r in member_api.request("GET", "").json()["reports"]]
    run = member_api.refresh(rid)  # the audience may refresh: on_demand "audience"
    assert run["triggered_by"] == member
    assert member_api.wait_final(rid, run["id"])["status"] == "done"
    # a stranger: the same 404 as a report that never existed, on every route
    missing = "0" * 32
    for path in (f"/{rid}", f"/{rid}/runs", f"/{rid}/runs/{run['id']}/notebook"):
        r = stranger_api.request("GET", path)
        assert r.status_code == 404 and r.json() == stranger_api.request(
            "GET", path.replace(rid, missing)).json()
    assert rid not in [r["id"] for r in stranger_api.request("GET", "").json()["reports"]]
    # out of the group: out of the audience (a new token: the service caches an identity)
    hub.api("DELETE", f"/groups/{group}/users", json={"users": [member]})
    member_api = ReportsAPI(hub, hub.user_token(member))
    assert member_api.request("GET", f"/{rid}").status_code == 404
    assert member_api.request("POST", f"/{rid}/runs", json={}).status_code == 404
    assert rid not in [r["id"] for r in member_api.request("GET", "").json()["reports"]]
