""""Open a copy" through a real hub, real servers, a real warehouse and Chromium: the
viewer's own named server in the snapshot's environment, the notebook opened in
JupyterLab, and a re-run with the warehouse unreachable that reads the owner's pinned
results through the share and gives every output of the original."""

from __future__ import annotations

import json
import re
import uuid

import nbformat
import psycopg
import pytest
import requests
from civis_service_support import ServiceClient, logged_in_page
from civis_test_support import PG_ADMIN, HubRun, HubServer, Postgres, wait_for
from playwright.sync_api import expect

pytestmark = [pytest.mark.hub, pytest.mark.browser]


@pytest.fixture(scope="module")
def warehouse():
    dbname = f"civis_share_wh_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'create database "{dbname}"')
    db = Postgres(dbname)
    try:
        yield db
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f'alter database "{dbname}" with allow_connections true')
            c.execute(f'drop database if exists "{dbname}" with (force)')


@pytest.fixture(scope="module")
def copy_hub(warehouse, tmp_path_factory):
    env = {"CIVIS_DEMO_WAREHOUSE_URL": warehouse.url}
    with HubRun(tmp_path_factory.mktemp("share-copy-hub"), env=env) as hub:
        yield hub


def service(hub, token):
    s = requests.Session()
    s.headers["Authorization"] = f"token {token}"
    return lambda method, path, **kw: s.request(
        method, f"{hub.url}/services/civis/{path}", timeout=60, **kw
    )


def outputs(nb: dict) -> list:
    return [c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"]


def test_open_a_copy_and_rerun_it_without_the_warehouse(copy_hub, warehouse, browser):
    hub = copy_hub
    owner, viewer = hub.create_user("sowner"), hub.create_user("sviewer")
    hub.start_and_wait(owner, "a", {"environment": "python"})
    a = HubServer(hub, owner, "a")
    table = f"shared_{uuid.uuid4().hex[:8]}"
    warehouse.execute(f"create table {table} (id int, v text)")
    warehouse.execute(f"insert into {table} values (1, 'first'), (2, 'second')")
    nb = nbformat.v4.new_notebook()
    nb.metadata["jupyterhub_civis"] = {"deliverable": "analysis"}
    assert a.api("PUT", "api/contents/q.ipynb", json={"type": "notebook", "content": nb}).ok
    code = (
        "from jupyterhub_civis.query_cache import query\n"
        f"print(query('select id, v from {table} order by id').to_json(orient='records'))"
    )
    original = a.run_in_notebook("q.ipynb", code)
    assert json.loads(original) == [{"id": 1, "v": "first"}, {"id": 2, "v": "second"}]
    # the notebook as a person saves it: the cell with its output (the pre-save hooks
    # add the environment and the pins)
    content = a.api("GET", "api/contents/q.ipynb").json()["content"]
    content["cells"] = [
        nbformat.v4.new_code_cell(
            code, outputs=[nbformat.v4.new_output("stream", name="stdout", text=original)]
        )
    ]
    assert a.api("PUT", "api/contents/q.ipynb", json={"type": "notebook", "content": content}).ok
    raw = a.api("GET", "api/contents/q.ipynb?type=file&format=text").json()["content"]
    saved = nbformat.reads(raw, as_version=4)  # multi-line strings joined, as the API gives them
    (pin,) = saved["metadata"]["jupyterhub_civis"]["queries"].values()
    assert saved["metadata"]["jupyterhub_civis"]["environment"]["name"] == "python"

    as_owner = service(hub, hub.user_token(owner))
    r = as_owner("POST", "api/shares", json={"notebook": raw, "path": "q.ipynb",
                                             "audience": {"users": [viewer]}})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert r.json()["versions"][0]["results"] == [pin["result_id"]]
    as_viewer = service(hub, hub.user_token(viewer))
    # the viewer reads exactly the share's result, and nothing else of the owner's
    assert as_viewer("GET", f"api/results/{pin['result_id']}/info").status_code == 200

    page = logged_in_page(browser, hub, viewer)
    page.goto(f"{hub.url}/services/civis/s/{sid}")
    expect(page.locator("#share-environment")).to_contain_text("python")
    page.click("#open-copy button")
    page.wait_for_url(re.compile(r".*/user/.+/lab/tree/shared/q-[0-9a-f]{8}\.ipynb$"),
                      timeout=240_000)
    copy_path = page.url.split("/lab/tree/", 1)[1]
    server_name = page.url.split(f"/user/{viewer}/", 1)[1].split("/", 1)[0]
    assert server_name.startswith("copy-")
    model = hub.server(viewer, server_name)
    assert model["user_options"]["environment"] == "python"
    copy = HubServer(hub, viewer, server_name)
    copied = copy.api("GET", f"api/contents/{copy_path}").json()["content"]
    assert outputs(copied) == outputs(saved)

    # re-run the copy with the warehouse unreachable (and changed): every output as before
    warehouse.execute(f"update {table} set v = 'changed'")
    warehouse.set_reachable(False)
    try:
        assert copy.run_in_notebook(copy_path, code) == original
        latest = copy.api("GET", "civis/queries").json()["queries"][0]
        assert latest["cache"] == "hit" and latest["result_id"] == pin["result_id"]
    finally:
        warehouse.set_reachable(True)

    # "open a copy" again reuses the viewer's server
    page.goto(f"{hub.url}/services/civis/s/{sid}")
    page.click("#open-copy button")
    page.wait_for_url(re.compile(r".*/lab/tree/shared/.*"), timeout=120_000)
    servers = hub.api("GET", f"/users/{viewer}").json()["servers"]
    assert list(servers) == [server_name]
    events = as_owner("GET", f"api/shares/{sid}/events").json()["events"]
    assert [e["action"] for e in events if e["action"] == "copy"] == ["copy", "copy"]

    # revoked: the grant is gone with it
    assert as_owner("DELETE", f"api/shares/{sid}").status_code == 204
    assert as_viewer("GET", f"api/results/{pin['result_id']}/info").status_code == 404


READ_THROUGH_THE_SHARE = """
import hashlib, os
from jupyterhub_civis.query_cache.service_store import ServiceStore
s = ServiceStore()  # this server's own token and handoff socket, as the query cache has them
handed = s._handoff({rid!r}) if s.handoff_socket else None
if handed:
    os.close(handed[1])
token = os.environ["JUPYTERHUB_API_TOKEN"]
print(hashlib.sha256(token.encode()).hexdigest()[:12], s.get({rid!r}) is not None,
      "-" if not s.handoff_socket else handed is not None, token)
"""


def test_removed_from_the_group_the_copy_reads_the_carried_result_no_more(copy_hub, browser):
    hub = copy_hub
    owner, viewer = hub.create_user("rgowner"), hub.create_user("rgviewer")
    group = f"copiers-{uuid.uuid4().hex[:6]}"
    assert hub.api("POST", f"/groups/{group}", json={"users": [viewer]}).status_code == 201
    rid = ServiceClient(f"{hub.url}/services/civis/", hub.user_token(owner)).put_ok()["id"]
    nb = nbformat.v4.new_notebook()
    nb.metadata["jupyterhub_civis"] = {
        "environment": {"name": "python", "packages": []},
        "queries": {"k": {"result_id": rid, "sql": "select 1"}},
    }
    r = service(hub, hub.user_token(owner))(
        "POST", "api/shares", json={"notebook": nbformat.writes(nb), "audience": {"groups": [group]}}
    )
    assert r.status_code == 201 and r.json()["versions"][0]["results"] == [rid], r.text
    sid = r.json()["id"]

    page = logged_in_page(browser, hub, viewer)
    page.goto(f"{hub.url}/services/civis/s/{sid}")
    page.click("#open-copy button")
    page.wait_for_url(re.compile(r".*/lab/tree/shared/.*"), timeout=240_000)
    copy = HubServer(hub, viewer, page.url.split(f"/user/{viewer}/", 1)[1].split("/", 1)[0])
    code = READ_THROUGH_THE_SHARE.format(rid=rid)
    token_id, by_http, by_handoff, token = copy.run(code).split()
    assert (by_http, by_handoff) in (("True", "True"), ("True", "-"))
    through = service(hub, token)
    assert through("GET", f"api/shares/{sid}/results/{rid}").status_code == 200

    # out of the group: the copy's next read of the carried result is refused at once,
    # with the very token the service has just identified (and cached)
    assert hub.api("DELETE", f"/groups/{group}/users", json={"users": [viewer]}).ok
    again = copy.run(code).split()
    assert again[0] == token_id  # the same server token
    assert again[1:3] == ["False", "-" if by_handoff == "-" else "False"]
    assert through("GET", f"api/results/{rid}/info").status_code == 404
    assert through("GET", f"api/shares/{sid}/results/{rid}").status_code == 404
    # back in the group: readable again at once
    assert hub.api("POST", f"/groups/{group}/users", json={"users": [viewer]}).ok
    assert through("GET", f"api/results/{rid}/info").status_code == 200


def test_environment_gone_from_the_catalog(copy_hub, browser):
    hub = copy_hub
    owner, viewer = hub.create_user("gowner"), hub.create_user("gviewer")
    nb = nbformat.v4.new_notebook()
    nb.metadata["jupyterhub_civis"] = {"environment": {"name": "retired-env", "packages": []}}
    as_owner = service(hub, hub.user_token(owner))
    sid = as_owner("POST", "api/shares", json={"notebook": nbformat.writes(nb),
                                                "audience": {"everyone": True}}).json()["id"]
    page = logged_in_page(browser, hub, viewer)
    page.goto(f"{hub.url}/services/civis/s/{sid}")
    page.click("#open-copy button")
    expect(page.locator("#copy-refused")).to_contain_text("retired-env")
    expect(page.locator("#copy-message")).not_to_be_empty()
    assert hub.api("GET", f"/users/{viewer}").json()["servers"] == {}  # nothing left behind
    # the viewer picks another environment
    page.fill("#pick-environment input[name=environment]", "python")
    page.click("#pick-environment button")
    page.wait_for_url(re.compile(r".*/lab/tree/shared/.*"), timeout=240_000)
    (name,) = hub.api("GET", f"/users/{viewer}").json()["servers"]
    wait_for(lambda: hub.server(viewer, name)["ready"], message="copy server")
    assert hub.server(viewer, name)["user_options"]["environment"] == "python"
