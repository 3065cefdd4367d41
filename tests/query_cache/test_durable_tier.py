"""The query cache's durable tier, inside a real JupyterHub running the civis service.

Every named server gets a hot folder of its own (as pods on different nodes
would), so a result can only travel between servers through the service.
The warehouse is a real PostgreSQL database; making it unreachable proves a
query was answered without touching it.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path

import nbformat
import pytest
import sqlalchemy as sa
from civis_service_support import service_config, wait_service
from civis_test_support import HubServer, free_port, processes_under, wait_for

pytestmark = pytest.mark.hub

QUERY = (
    "from jupyterhub_civis.query_cache import query\n"
    "print(query({sql!r}{extra}).to_json(orient='records'))"
)


class TierHub:
    """A hub with the civis service (restartable on the same state folder): every named
    server gets its own hot folder under ``hot/<user>/<server>``."""

    def __init__(self, hub_factory, warehouse_url: str, service_args: list[str]):
        self.service_port = free_port()
        self.run = hub_factory(
            self.config(hub_factory, service_args),
            env={"CIVIS_DEMO_WAREHOUSE_URL": warehouse_url},
        )
        self.state = self.run.state_dir
        self.hot, self.data = self.state / "hot", self.state / "civis-data"
        self.service = f"http://127.0.0.1:{self.service_port}/services/civis/"
        wait_service(self.service)

    def config(self, hub_factory, service_args) -> str:
        state = hub_factory.tmp_path / "hub"
        return (
            service_config(self.service_port, [f"--data-dir={state / 'civis-data'}", *service_args])
            + "import os\n"
            + "c.Spawner.environment['CIVIS_QUERY_CACHE_DIR'] = lambda spawner: os.path.join("
            + f"{str(state / 'hot')!r}, spawner.user.escaped_name, spawner.name or 'default')\n"
        )

    @property
    def hub(self):
        return self.run.hub

    def start(self):
        self.run.start()
        wait_service(self.service)
        return self

    def stop(self):
        self.run.stop()

    def server(self, user: str, name: str) -> HubServer:
        self.hub.start_and_wait(user, name, {"environment": "python"})
        return HubServer(self.hub, user, name)

    def service_results(self, user: str) -> list[dict]:
        token = self.hub.user_token(user)
        r = self.hub.session.get(
            self.service + "api/results", headers={"Authorization": f"token {token}"}, timeout=30
        )
        assert r.status_code == 200, r.text
        return r.json()["results"]

    def service_pid(self) -> int:
        (pid,) = [
            int(line.split(":", 1)[0])
            for line in processes_under(self.state)
            if "jupyterhub_civis.cli service" in line and str(self.data) in line
        ]
        return pid

    def metadata(self, sql: str) -> list:
        engine = sa.create_engine(f"sqlite:///{self.data}/civis-service.sqlite")
        try:
            with engine.connect() as conn:
                return list(conn.execute(sa.text(sql)))
        finally:
            engine.dispose()


@pytest.fixture
def tier_hub(pg, hub_factory):
    return lambda *service_args: TierHub(hub_factory, pg.url, list(service_args))


def stalled_sends(port: int) -> bool:
    """Whether some connection to 127.0.0.1:``port`` has data queued that the peer has not read."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state, queues = fields[2], fields[3], fields[4]
        if int(remote.split(":")[1], 16) == port and state == "01":  # ESTABLISHED
            if int(queues.split(":")[0], 16) > 0:
                return True
    return False


def latest(server: HubServer) -> dict:
    return server.api("GET", "civis/queries").json()["queries"][0]


def new_table(pg, rows: int = 3) -> str:
    table = f"tier_{uuid.uuid4().hex[:8]}"
    pg.execute(
        f"create table {table} as select g as id, 'v' || g as v from generate_series(1, {rows}) g"
    )
    return table


def analysis_notebook(server: HubServer, path: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["jupyterhub_civis"] = {"deliverable": "analysis"}
    r = server.api("PUT", f"api/contents/{path}", json={"type": "notebook", "content": nb})
    assert r.status_code == 201, r.text


def save(server: HubServer, path: str) -> dict:
    """Save the notebook as JupyterLab does (the pre-save hooks write its pins)."""
    model = server.api("GET", f"api/contents/{path}").json()
    r = server.api(
        "PUT", f"api/contents/{path}", json={"type": "notebook", "content": model["content"]}
    )
    assert r.status_code == 200, r.text
    return server.api("GET", f"api/contents/{path}").json()["content"]


def test_stored_from_server_a_is_a_hit_in_server_b_and_outlives_restarts(tier_hub, pg):
    th = tier_hub()
    user = th.hub.create_user("tier")
    a, b = th.server(user, "a"), th.server(user, "b")
    table = new_table(pg)
    sql = f"select id, v from {table} order by id"
    code = QUERY.format(sql=sql, extra="")

    analysis_notebook(a, "analysis.ipynb")
    rows = json.loads(a.run_in_notebook("analysis.ipynb", code))
    assert rows == [{"id": 1, "v": "v1"}, {"id": 2, "v": "v2"}, {"id": 3, "v": "v3"}]
    stored = latest(a)
    assert stored["cache"] == "miss"
    rid = stored["result_id"]
    assert stored["result_path"] == str(th.hot / user / "a" / f"{rid}.arrow")

    # the service holds it under the same id, described, and pinned by the notebook
    # from the moment it exists (the pin travelled with the upload)
    (info,) = th.service_results(user)
    assert info["id"] == rid and info["rows"] == 3 and info["pins"] == ["analysis.ipynb"]
    assert info["sql"] == sql and info["connection"] == "default"

    content = save(a, "analysis.ipynb")
    assert [
        p["result_id"] for p in content["metadata"]["jupyterhub_civis"]["queries"].values()
    ] == [rid]
    r = b.api("PUT", "api/contents/copy.ipynb", json={"type": "notebook", "content": content})
    assert r.status_code == 201, r.text
    assert not (th.hot / user / "b" / f"{rid}.arrow").exists()

    pg.execute(f"update {table} set v = 'changed'")
    pg.set_reachable(False)
    try:
        # B's hot tier is cold: the pinned result comes from the service, not the warehouse
        assert json.loads(b.run_in_notebook("copy.ipynb", code)) == rows
        hit = latest(b)
        assert (hit["cache"], hit["result_id"]) == ("hit", rid)
        assert hit["result_path"] == str(th.hot / user / "b" / f"{rid}.arrow")
        # a bare kernel asking for any result younger than an hour gets it too
        fresh_enough = QUERY.format(sql=sql, extra=", max_age=3600")
        assert json.loads(b.run(fresh_enough)) == rows
        assert (latest(b)["cache"], latest(b)["result_id"]) == ("hit", rid)

        # stop both servers, restart the hub and the service: still there
        th.hub.stop(user, "a")
        th.hub.stop(user, "b")
        th.stop()
        th.start()
        (info,) = th.service_results(user)
        assert (info["id"], sorted(info["pins"])) == (rid, ["analysis.ipynb", "copy.ipynb"])
        c = th.server(user, "c")
        r = c.api("PUT", "api/contents/copy.ipynb", json={"type": "notebook", "content": content})
        assert r.status_code == 201, r.text
        assert json.loads(c.run_in_notebook("copy.ipynb", code)) == rows
        assert (latest(c)["cache"], latest(c)["result_id"]) == ("hit", rid)
    finally:
        pg.set_reachable(True)


def test_pinned_result_survives_eviction_pressure_unpinned_do_not(tier_hub, pg):
    # a budget that holds the small pinned result but none of the larger ones
    th = tier_hub("--CivisService.max_total_bytes=200000", "--CivisService.cleanup_interval=0.5")
    user = th.hub.create_user("evict")
    a = th.server(user, "a")
    small = f"select id, v from {new_table(pg)} order by id"
    analysis_notebook(a, "keep.ipynb")
    kept_rows = json.loads(a.run_in_notebook("keep.ipynb", QUERY.format(sql=small, extra="")))
    kept = latest(a)["result_id"]
    assert [r["pins"] for r in th.service_results(user)] == [["keep.ipynb"]]
    content = save(a, "keep.ipynb")

    big_table = new_table(pg, rows=20_000)
    unpinned = []
    for i in range(3):  # bare kernels: nothing pins these results
        sql = f"select id, v, md5(v) as h from {big_table} where id > {i} order by id"
        assert len(json.loads(a.run(QUERY.format(sql=sql, extra=", mode='refresh'")))) > 0
        unpinned.append((sql, latest(a)["result_id"]))
        assert latest(a)["bytes"] > 200_000
    wait_for(
        lambda: [r["id"] for r in th.service_results(user)] == [kept],
        timeout=30,
        message="unpinned results evicted from the service",
    )

    b = th.server(user, "b")  # cold hot tier
    r = b.api("PUT", "api/contents/keep.ipynb", json={"type": "notebook", "content": content})
    assert r.status_code == 201, r.text
    pg.set_reachable(False)
    try:
        assert (
            json.loads(b.run_in_notebook("keep.ipynb", QUERY.format(sql=small, extra="")))
            == kept_rows
        )
        assert (latest(b)["cache"], latest(b)["result_id"]) == ("hit", kept)
    finally:
        pg.set_reachable(True)
    sql, evicted = unpinned[0]
    json.loads(b.run(QUERY.format(sql=sql, extra=", max_age=3600")))
    rerun = latest(b)
    assert rerun["cache"] == "miss" and rerun["result_id"] != evicted


def test_service_killed_during_an_upload(tier_hub, pg):
    th = tier_hub("--CivisService.upload_stale_after=1", "--CivisService.cleanup_interval=0.2")
    user = th.hub.create_user("crash")
    a = th.server(user, "a")
    # far more than the loopback socket buffers hold, so the upload cannot finish unseen
    table = f"crash_{uuid.uuid4().hex[:8]}"
    pg.execute(
        f"create table {table} as select g as id, md5(g::text) as a, md5((g + 1)::text) as b,"
        f" md5((g + 2)::text) as c from generate_series(1, 400000) g"
    )
    sql = f"select * from {table}"
    a_pid = th.hub.api("GET", f"/users/{user}").json()["servers"]["a"]["state"]["pid"]
    service_pid = th.service_pid()

    os.kill(service_pid, signal.SIGSTOP)  # the upload will start and stall
    try:
        r = a.api("POST", "civis/queries", json={"sql": sql, "mode": "refresh"})
        assert r.status_code == 201, r.text
        query_id = r.json()["id"]

        def storing():
            q = a.api("GET", f"civis/queries/{query_id}").json()
            assert q["state"] not in ("done", "failed"), q
            return q["state"] == "storing"

        wait_for(storing, timeout=120, message="the server to store the result")
        wait_for(
            lambda: stalled_sends(th.service_port),
            timeout=60,
            message="the upload to stall on the stopped service",
        )
        os.kill(a_pid, signal.SIGSTOP)  # freeze the sender with the body part sent
        os.kill(service_pid, signal.SIGCONT)
        blobs = th.data / "blobs"

        def receiving():
            uploads = th.metadata(f"select id from civis_uploads where owner = '{user}'")
            if not uploads:
                return None
            partial = blobs / f"{uploads[0][0]}.arrow"
            return partial if partial.exists() and partial.stat().st_size > 0 else None

        partial = wait_for(receiving, timeout=30, message="the service to receive part of it")
        os.kill(service_pid, signal.SIGKILL)
    finally:
        os.kill(a_pid, signal.SIGCONT)
        try:
            os.kill(service_pid, signal.SIGCONT)
        except ProcessLookupError:
            pass

    # the server keeps the result in its hot tier and answers its own query
    done = wait_for(
        lambda: (q := a.api("GET", f"civis/queries/{query_id}").json())["state"] == "done" and q,
        timeout=120,
        message="the query to finish without the service",
    )
    assert done["rows"] == 400_000

    th.stop()
    th.start()
    assert th.service_results(user) == []
    wait_for(
        lambda: not th.metadata("select id from civis_uploads") and not partial.exists(),
        timeout=30,
        message="the interrupted upload cleaned up",
    )
    # another server of the user re-runs the query, and this time the service keeps it
    b = th.server(user, "b")
    count = "from jupyterhub_civis.query_cache import query\nprint(len(query({!r}, max_age=3600)))"
    assert b.run(count.format(sql)).strip() == "400000"
    rerun = latest(b)
    assert rerun["cache"] == "miss"
    (stored,) = th.service_results(user)
    assert stored["id"] == rerun["result_id"] and stored["rows"] == 400_000
