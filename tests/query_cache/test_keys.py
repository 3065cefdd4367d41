"""Exact cache keys on real PostgreSQL: queries the lexer tells apart never share a
result, a ``${DB}`` template resolves per server (locally and through the service's
durable tier), and pins saved under version-1 keys still answer."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.query_cache.conftest import PG_ADMIN, Postgres, Server
from tests.query_cache.test_durable_tier import QUERY, TierHub, latest
from tests.query_cache.test_kernel import Kernel, save_notebook, stdout
from tests.query_cache.test_policy import COLLIDING

FIXTURE = Path(__file__).parent / "fixtures" / "old_key_notebook"
FIXTURE_RESULT = "b895ae2bd5584691a5ec28105795cee1"


@pytest.fixture(scope="module")
def other_db():
    """A second database with the same table name as the first, other content."""
    name = f"civis_qc_other_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'create database "{name}"')
    try:
        yield Postgres(name)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f'drop database if exists "{name}" with (force)')


@pytest.mark.parametrize("good, bad", COLLIDING)
def test_lexically_different_queries_get_their_own_results(server, good, bad):
    first = server.run(sql=good, max_age=3600)
    assert first["state"] == "done", first
    again = server.run(sql=good, max_age=3600)
    assert (again["cache"], again["result_id"]) == ("hit", first["result_id"])
    other = server.run(sql=bad, max_age=3600)
    # PostgreSQL reads the second spelling differently: it must reach PostgreSQL
    # (and fail there), not be answered by the first one's stored result
    assert other["key"] != first["key"]
    assert (other["cache"], other["state"]) == ("miss", "failed"), other
    assert other["result_id"] is None


def test_string_continuation_results_differ(server):
    joined = server.run(sql="select 'a'\n'b' as v", max_age=3600)
    assert server.result(joined).to_pylist() == [{"v": "ab"}]
    spaced = server.run(sql="select 'a' 'b' as v", max_age=3600)
    assert spaced["state"] == "failed" and "syntax error" in spaced["error"]


def _template_db_table(pg, other_db, table):
    for db, value in ((pg, "first database"), (other_db, "other database")):
        db.execute(f"create table {table} (v text)")
        db.execute(f"insert into {table} values ('{value}')")


def test_db_template_resolves_per_server(pg, other_db, tmp_path):
    table = f"tmpl_{uuid.uuid4().hex[:8]}"
    _template_db_table(pg, other_db, table)
    template = {"default": "postgresql://postgres@127.0.0.1:5432/${CIVIS_QC_DB}"}
    servers = [
        Server(
            tmp_path / name,
            connections=template,
            env={"CIVIS_QC_DB": db.dbname},
            data_dir=tmp_path / "shared-data",  # one store for both
            name=name,
        )
        for name, db in (("a", pg), ("b", other_db))
    ]
    try:
        for s in servers:
            s.start()
        a, b = servers
        sql = f"select v from {table}"
        ra = a.run(sql=sql, max_age=3600)
        rb = b.run(sql=sql, max_age=3600)
        assert ra["key"] != rb["key"]
        assert rb["cache"] == "miss"
        assert a.result(ra).to_pylist() == [{"v": "first database"}]
        assert b.result(rb).to_pylist() == [{"v": "other database"}]
    finally:
        for s in servers:
            s.stop()


class DbPerServerTierHub(TierHub):
    """Named server ``a`` reads the test database, every other one the other database."""

    def __init__(self, hub_factory, warehouse_url, service_args, dbs):
        self.dbs = dbs
        super().__init__(hub_factory, warehouse_url, service_args)

    def config(self, hub_factory, service_args) -> str:
        first, other = self.dbs
        return super().config(hub_factory, service_args) + (
            "c.Spawner.environment['CIVIS_QC_DB'] = lambda spawner: "
            f"{first!r} if spawner.name == 'a' else {other!r}\n"
        )


@pytest.mark.hub
def test_db_template_never_shares_through_the_durable_tier(pg, other_db, hub_factory):
    table = f"tmpl_{uuid.uuid4().hex[:8]}"
    _template_db_table(pg, other_db, table)
    th = DbPerServerTierHub(
        hub_factory,
        "postgresql://postgres@127.0.0.1:5432/${CIVIS_QC_DB}",
        [],
        (pg.dbname, other_db.dbname),
    )
    user = th.hub.create_user("tmpl")
    a, b = th.server(user, "a"), th.server(user, "b")
    code = QUERY.format(sql=f"select v from {table}", extra=", max_age=3600")
    assert json.loads(a.run(code)) == [{"v": "first database"}]
    assert json.loads(b.run(code)) == [{"v": "other database"}]
    assert latest(b)["cache"] == "miss" and latest(b)["key"] != latest(a)["key"]
    # both are in the service, under their own keys
    assert len(th.service_results(user)) == 2


def test_notebook_saved_with_version_1_keys_reruns_identically(pg, tmp_path):
    """tests/query_cache/fixtures/old_key_notebook was saved by the version-1 code; its
    query's table does not exist, so only the saved pin can answer it."""
    s = Server(
        tmp_path / "srv",
        connections={"default": PG_ADMIN.rsplit("/", 1)[0] + "/test"},
        query_cache={"store_dir": str(tmp_path / "store")},
    )
    shutil.copytree(FIXTURE / "store", tmp_path / "store")
    s.root.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURE / "old_keys.ipynb", s.root / "old_keys.ipynb")
    saved = json.loads((FIXTURE / "old_keys.ipynb").read_text())
    (old_key,) = saved["metadata"]["jupyterhub_civis"]["queries"]
    s.start()
    try:
        kernel = Kernel(s, "old_keys.ipynb")
        try:
            content, outputs = kernel.run("".join(saved["cells"][0]["source"]))
            assert content["status"] == "ok", content
            assert json.loads(stdout(outputs)) == [
                {"id": 1, "v": "saved one"},
                {"id": 2, "v": "saved two"},
            ]
        finally:
            kernel.close()
        status = s.api("GET", "civis/queries").json()["queries"][0]
        assert (status["cache"], status["result_id"]) == ("hit", FIXTURE_RESULT)
        assert status["key"] != old_key  # it ran under a version-2 key
        # saved again: the pin is now also under the new key, the old one stays
        queries = save_notebook(s, "old_keys.ipynb")["metadata"]["jupyterhub_civis"]["queries"]
        assert queries[old_key]["result_id"] == FIXTURE_RESULT
        assert queries[status["key"]]["result_id"] == FIXTURE_RESULT
        assert queries[status["key"]]["key_version"] == 2
    finally:
        s.stop()
