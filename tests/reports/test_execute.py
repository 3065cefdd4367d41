"""``api/civis/execute`` in a real single-user server of a real hub: a notebook runs with
nbclient on the server's kernels, its queries refresh through the owner's query cache
(stored in the civis service), progress is readable while it runs, it can fail,
time out and be cancelled, and parameters are typed values — never code."""

from __future__ import annotations

import json
import uuid

import nbformat
import pytest
from civis_test_support import TEST_TOKEN, wait_for
from report_support import Executor, notebook, outputs, query_cell

pytestmark = pytest.mark.hub

PARAMS = "import datetime\nregion = 'west'\ntop_n = 2\nfactor = 1.5\nverbose = False\nday = datetime.date(2026, 1, 1)"


def service_result_ids(hub, token) -> set[str]:
    r = hub.session.get(
        hub.service + "api/results", headers={"Authorization": f"token {token}"}, timeout=30
    )
    assert r.status_code == 200, r.text
    return {result["id"] for result in r.json()["results"]}


def test_runs_a_notebook_with_parameters_and_refreshes_its_queries(report_hub, owner_server, warehouse):
    user, server, token = owner_server
    ex = Executor(server, token)
    table = warehouse.table({"west": 1, "east": 2})
    nb = notebook(
        query_cell(table),
        "print(region, top_n, factor, verbose, day.isoformat())",
        parameters=PARAMS,
    )
    first = ex.run(nb, parameters={"region": "east", "top_n": 3, "day": "2026-02-03"})
    assert first["state"] == "done", first
    assert (first["cell"], first["cells"]) == (4, 4)  # the injected cell counts
    executed = ex.executed(first["id"])
    printed = outputs(executed)
    assert json.loads(printed[2]) == [{"region": "east", "amount": 2}]
    assert printed[3].split() == ["east", "3", "1.5", "False", "2026-02-03"]
    assert executed["cells"][1]["metadata"]["tags"] == ["injected-parameters"]
    (result_id,) = first["result_ids"]
    assert result_id in service_result_ids(report_hub, token)
    pins = executed["metadata"]["jupyterhub_civis"]["queries"]
    assert [p["result_id"] for p in pins.values()] == [result_id]

    # the data changes: the notebook says "analysis", yet a run refreshes its queries
    warehouse.execute(f"update {table} set amount = 20 where region = 'east'")
    second = ex.run(nb, parameters={"region": "east"})
    assert second["state"] == "done", second
    assert json.loads(outputs(ex.executed(second["id"]))[2]) == [{"region": "east", "amount": 20}]
    assert second["result_ids"] != first["result_ids"]
    # the first run's notebook still shows the old data
    assert json.loads(outputs(ex.executed(first["id"]))[2]) == [{"region": "east", "amount": 2}]


def test_progress_while_running_then_cancel(report_hub, owner_server, tmp_path):
    user, server, token = owner_server
    ex = Executor(server, token)
    flag = tmp_path / f"go-{uuid.uuid4().hex}"
    wait_cell = (
        "import os, time\n"
        f"while not os.path.exists({str(flag)!r}):\n    time.sleep(0.05)\n"
        "print('released')"
    )
    nb = notebook("x = 1", wait_cell, "print('after')")
    run = ex.start(nb)
    running = wait_for(
        lambda: (s := ex.status(run["id"]))["cell"] == 2 and s, message="cell 2 of 3 running"
    )
    assert (running["state"], running["cells"]) == ("running", 3)
    listed = ex.request("GET").json()["runs"]
    assert listed[0]["id"] == run["id"] and listed[0]["state"] == "running"
    assert ex.request("GET", f"/{run['id']}/notebook").status_code == 409

    r = ex.request("POST", f"/{run['id']}/cancel")
    assert r.status_code == 200, r.text
    cancelled = ex.wait_final(r.json())
    assert cancelled["state"] == "cancelled"
    assert outputs(ex.executed(run["id"]))[2] == ""  # the last cell never ran

    # released, the same notebook runs to its end
    flag.write_text("go")
    done = ex.run(nb)
    assert done["state"] == "done" and outputs(ex.executed(done["id"]))[1] == "released\n"


def test_failed_cell_and_its_output_are_reported(owner_server):
    _, server, token = owner_server
    ex = Executor(server, token)
    nb = notebook("print('one')", "print('about to fail')\nraise ValueError('boom')", "print('never')")
    run = ex.run(nb)
    assert run["state"] == "failed", run
    error = run["error"]
    assert error["cell"] == 2 and error["message"] == "ValueError"
    assert "about to fail" in error["output"] and "ValueError: boom" in error["output"]
    assert "raise ValueError('boom')" in error["source"]
    assert outputs(ex.executed(run["id"])) == ["one\n", "about to fail\n", ""]


def test_timeout(owner_server):
    _, server, token = owner_server
    ex = Executor(server, token)
    run = ex.run(notebook("import time\nwhile True:\n    time.sleep(0.05)"), timeout=2)
    assert run["state"] == "timeout" and "longer than 2 s" in run["error"]["message"], run["error"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"parameters": {"top_n": "1; import os"}}, "parameters.top_n"),
        ({"parameters": {"top_n": True}}, "parameters.top_n"),
        ({"parameters": {"top_n": 2**70}}, "parameters.top_n"),
        ({"parameters": {"verbose": "yes"}}, "parameters.verbose"),
        ({"parameters": {"region": ["west"]}}, "parameters.region"),
        ({"parameters": {"day": "__import__('os')"}}, "parameters.day"),
        ({"parameters": {"__import__('os').system('id')": 1}}, "parameters.__import__('os').system('id')"),
        ({"parameters": {"region": "x" * 10_001}}, "parameters.region"),
        ({"path": "../escape.ipynb"}, "body.path"),
        ({"path": "/etc/x.ipynb"}, "body.path"),
        ({"timeout": -1}, "body.timeout"),
        ({"extra": 1}, "body.extra"),
        ({"notebook": {"cells": "no"}}, "body.notebook"),
    ],
)
def test_hostile_or_bad_requests_are_4xx(owner_server, body, field):
    _, server, token = owner_server
    ex = Executor(server, token)
    payload = {"path": "reports/p.ipynb", "notebook": notebook("print(region)", parameters=PARAMS)}
    payload.update(body)
    r = ex.request("POST", json=payload)
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith(field + ":"), r.text
    assert all(run["path"] != payload["path"] for run in ex.request("GET").json()["runs"])


def test_hostile_string_value_is_data_not_code(owner_server):
    _, server, token = owner_server
    ex = Executor(server, token)
    hostile = "west'\nimport os; print('pwned')  #\"\"\"\\"
    run = ex.run(notebook("print(repr(region))", parameters=PARAMS), parameters={"region": hostile})
    assert run["state"] == "done", run
    assert outputs(ex.executed(run["id"]))[2] == repr(hostile) + "\n"


def test_deeply_nested_json_is_a_400(owner_server):
    _, server, token = owner_server
    ex = Executor(server, token)
    deep = '{"path": "a.ipynb", "parameters": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    r = ex.request("POST", data=deep, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text


def test_only_the_owner_and_the_civis_service_may_execute(report_hub, owner_server):
    user, server, _ = owner_server
    # a Hub service with access to every server, but not the civis service: refused
    ex = Executor(server, TEST_TOKEN)
    r = ex.request("POST", json={"path": "a.ipynb", "notebook": notebook("1")})
    assert r.status_code == 403 and "owner" in r.json()["message"]
    assert ex.request("GET").status_code == 403
    # another user's token does not even reach the server's API
    other = report_hub.create_user("other")
    r = Executor(server, report_hub.user_token(other)).request("GET")
    assert r.status_code == 403


def test_a_saved_notebook_runs_by_path(owner_server):
    _, server, token = owner_server
    nb = notebook("print(6 * 7)")
    r = server.api("PUT", "api/contents/saved.ipynb", json={"type": "notebook", "content": nb})
    assert r.status_code == 201, r.text
    ex = Executor(server, token)
    r = ex.request("POST", json={"path": "saved.ipynb"})
    assert r.status_code == 202, r.text
    run = ex.wait_final(r.json())
    assert run["state"] == "done" and outputs(ex.executed(run["id"])) == ["42\n"]
    r = ex.request("POST", json={"path": "missing.ipynb"})
    assert r.status_code == 400 and r.json()["field"] == "body.path"


def test_a_notebook_as_stored_on_disk_runs(owner_server):
    """Sources as lists of lines (how .ipynb files keep them) run as written."""
    _, server, token = owner_server
    nb = json.loads(nbformat.writes(notebook("a = 6\nb = 7\nprint(a * b)", parameters="a = 1")))
    assert isinstance(nb["cells"][1]["source"], list)
    ex = Executor(server, token)
    run = ex.run(nb, parameters={"a": 2})
    assert run["state"] == "done", run
    assert outputs(ex.executed(run["id"]))[2] == "42\n"
