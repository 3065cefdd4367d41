"""The kernel client in a real kernel of a real server: pins in the saved notebook,
a copy re-run in another server of the same user, and interrupt = cancel."""

from __future__ import annotations

import json
import shutil
import time
import uuid

import nbformat
import pytest
from jupyter_client import BlockingKernelClient

from tests.query_cache.conftest import Server, pg_connections, wait_for

ENVIRONMENT = {"name": "python-tabulate", "id": "env-123", "packages": ["tabulate==0.9.0"]}


class Kernel:
    def __init__(self, server: Server, path: str):
        r = server.api(
            "POST",
            "api/sessions",
            json={"path": path, "type": "notebook", "name": path, "kernel": {"name": "python3"}},
        )
        assert r.status_code == 201, r.text
        self.server, self.session = server, r.json()
        self.id = self.session["kernel"]["id"]
        cf = server.runtime / f"kernel-{self.id}.json"
        wait_for(cf.exists, 30, message="kernel connection file")
        self.client = BlockingKernelClient()
        self.client.load_connection_file(str(cf))
        # no heartbeat channel: its first missed beats under load read as "kernel died"
        self.client.start_channels(hb=False)
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 120):
        outputs = []
        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=outputs.append)
        return reply["content"], outputs

    def close(self):
        self.client.stop_channels()
        self.server.api("DELETE", f"api/sessions/{self.session['id']}")


def stdout(outputs) -> str:
    return "".join(m["content"]["text"] for m in outputs if m["msg_type"] == "stream")


def make_notebook(server: Server, path: str, deliverable: str):
    nb = nbformat.v4.new_notebook()
    nb.metadata["jupyterhub_civis"] = {"deliverable": deliverable}
    r = server.api(
        "PUT", f"api/contents/{path}", json={"type": "notebook", "format": "json", "content": nb}
    )
    assert r.status_code in (200, 201), r.text


def save_notebook(server: Server, path: str) -> dict:
    """What the frontend does on save: PUT the model back (the pre-save hooks run)."""
    model = server.api("GET", f"api/contents/{path}").json()
    r = server.api(
        "PUT",
        f"api/contents/{path}",
        json={"type": "notebook", "format": "json", "content": model["content"]},
    )
    assert r.status_code == 200, r.text
    return json.loads((server.root / path).read_text())


@pytest.fixture(scope="module")
def user_servers(pg, tmp_path_factory):
    """Two servers of one user ("alice") on one machine: same data dir, so the same default store."""
    base = tmp_path_factory.mktemp("qc-user")
    env = {"JUPYTERHUB_USER": "alice", "CIVIS_ENVIRONMENT_JSON": json.dumps(ENVIRONMENT)}
    servers = [
        Server(
            base / name, connections=pg_connections(pg), env=env, data_dir=base / "data", name=name
        )
        for name in ("a", "b")
    ]
    servers[0].start()
    try:
        yield servers
    finally:
        for s in servers:
            s.stop()


def test_pins_travel_in_the_notebook_to_another_server(user_servers, pg):
    a, b = user_servers
    table = f"pinned_{uuid.uuid4().hex[:8]}"
    pg.execute(f"create table {table} (id int, v text)")
    pg.execute(f"insert into {table} values (1, 'one'), (2, 'two')")
    make_notebook(a, "analysis.ipynb", "analysis")
    kernel = Kernel(a, "analysis.ipynb")
    try:
        code = (
            "from jupyterhub_civis.query_cache import query\n"
            f"df = query('select id, v from {table} order by id')\n"
            "print(df.to_json(orient='records'))"
        )
        content, outputs = kernel.run(code)
        assert content["status"] == "ok", content
        rows = json.loads(stdout(outputs))
        assert rows == [{"id": 1, "v": "one"}, {"id": 2, "v": "two"}]
        # the progress display was shown and updated in place
        kinds = [m["msg_type"] for m in outputs]
        assert "display_data" in kinds and "update_display_data" in kinds
        status = a.api("GET", "civis/queries").json()["queries"][0]
        assert status["notebook"] == "analysis.ipynb" and status["mode"] == "reproducible"
        assert status["cache"] == "miss"
    finally:
        kernel.close()

    saved = save_notebook(a, "analysis.ipynb")
    civis = saved["metadata"]["jupyterhub_civis"]
    assert civis["environment"] == ENVIRONMENT  # the other pre-save hook's key survives
    assert civis["deliverable"] == "analysis"
    (pin,) = civis["queries"].values()
    assert pin["result_id"] == status["result_id"] and pin["rows"] == 2
    assert table in pin["sql"] and pin["time"].endswith("Z")

    # the data changes and the warehouse goes away; a copy opened in the other server
    pg.execute(f"update {table} set v = 'changed'")
    pg.set_reachable(False)
    try:
        b.root.mkdir(parents=True, exist_ok=True)
        shutil.copy(a.root / "analysis.ipynb", b.root / "copy.ipynb")
        b.start()
        kernel = Kernel(b, "copy.ipynb")
        try:
            content, outputs = kernel.run(code)
            assert content["status"] == "ok", content
            assert json.loads(stdout(outputs)) == rows
        finally:
            kernel.close()
        latest = b.api("GET", "civis/queries").json()["queries"][0]
        assert latest["cache"] == "hit" and latest["result_id"] == pin["result_id"]
    finally:
        pg.set_reachable(True)


def test_interrupting_the_kernel_cancels_the_warehouse_query(user_servers, pg):
    a = user_servers[0]
    make_notebook(a, "report.ipynb", "report")
    kernel = Kernel(a, "report.ipynb")
    marker = f"kernel_interrupt_{uuid.uuid4().hex[:8]}"
    try:
        msg_id = kernel.client.execute(
            "from jupyterhub_civis.query_cache import query\n"
            f"query(\"select pg_sleep(60), '{marker}'\")"
        )
        wait_for(lambda: pg.active(marker), 30, message="the query to reach PostgreSQL")
        t0 = time.monotonic()
        assert a.api("POST", f"api/kernels/{kernel.id}/interrupt").status_code == 204
        wait_for(lambda: not pg.active(marker), 2.0, message="pg_stat_activity to drop the query")
        assert time.monotonic() - t0 < 2.0
        reply = kernel.client.get_shell_msg(timeout=30)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kernel.client.get_shell_msg(timeout=30)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        status = a.api("GET", "civis/queries").json()["queries"][0]
        assert marker in status["sql"] and status["state"] == "cancelled"
    finally:
        kernel.close()


def test_sql_cell_magic(user_servers):
    a = user_servers[0]
    make_notebook(a, "magic.ipynb", "report")
    kernel = Kernel(a, "magic.ipynb")
    try:
        content, outputs = kernel.run(
            "%load_ext jupyterhub_civis.query_cache\n"
            "get_ipython().run_cell_magic('sql', '--out df -c default', "
            "'select 41 + 1 as answer, $$x$$ as s')\n"
            "print(df.to_dict('records'))"
        )
        assert content["status"] == "ok", content
        assert stdout(outputs).strip() == "[{'answer': 42, 's': 'x'}]"
    finally:
        kernel.close()


def test_a_failed_query_is_one_short_error_and_a_finished_progress_line(user_servers):
    a = user_servers[0]
    make_notebook(a, "errors.ipynb", "report")
    kernel = Kernel(a, "errors.ipynb")
    try:
        content, outputs = kernel.run(
            "from jupyterhub_civis.query_cache import query\n"
            "query('select 1/0 as boom\\nfrom generate_series(1, 3)')"
        )
        assert content["status"] == "error"
        errors = [m["content"] for m in outputs if m["msg_type"] == "error"]
        (error,) = errors
        # IPython used _render_traceback_: these lines and no frames of the client
        assert error["traceback"] == [
            "QueryError: division by zero",
            "SQLSTATE 22012",
            "query: select 1/0 as boom …",
            "status page: /civis/queries/status",
        ]
        # the progress line ends as "failed", not a stale "submitting"
        shown = [
            m["content"]["data"]["text/plain"]
            for m in outputs
            if m["msg_type"] in ("display_data", "update_display_data")
        ]
        assert shown[-1].startswith("query failed · ")
        html = [
            m["content"]["data"]["text/html"]
            for m in outputs
            if m["msg_type"] in ("display_data", "update_display_data")
        ]
        assert 'href="/civis/queries/status"' in html[-1]
    finally:
        kernel.close()


def test_deliverable_one_liner_makes_reruns_reproducible_and_is_saved(user_servers, pg):
    a = user_servers[0]
    table = f"deliv_{uuid.uuid4().hex[:8]}"
    pg.execute(f"create table {table} as select 1 as v")
    nb = nbformat.v4.new_notebook()  # no jupyterhub_civis metadata: the server default
    r = a.api("PUT", "api/contents/plain.ipynb", json={"type": "notebook", "content": nb})
    assert r.status_code == 201, r.text
    kernel = Kernel(a, "plain.ipynb")
    code = (
        "from jupyterhub_civis.query_cache import query\n"
        f"print(query('select v from {table}').v.tolist())"
    )
    try:
        content, outputs = kernel.run(
            "from jupyterhub_civis.query_cache import deliverable\ndeliverable('analysis')"
        )
        assert content["status"] == "ok", content
        assert stdout(kernel.run(code)[1]).strip() == "[1]"
        pg.execute(f"update {table} set v = 2")
        assert stdout(kernel.run(code)[1]).strip() == "[1]"  # the pinned result
        status = a.api("GET", "civis/queries").json()["queries"][0]
        assert (status["mode"], status["cache"]) == ("reproducible", "hit")
        content, outputs = kernel.run("deliverable('report')")
        assert stdout(kernel.run(code)[1]).strip() == "[2]"
        content, outputs = kernel.run("deliverable('final')")
        assert content["status"] == "error"
        (error,) = [m["content"] for m in outputs if m["msg_type"] == "error"]
        assert "use 'analysis'" in error["traceback"][0]
    finally:
        kernel.close()
    saved = save_notebook(a, "plain.ipynb")
    assert saved["metadata"]["jupyterhub_civis"]["deliverable"] == "report"
