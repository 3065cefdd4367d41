"""REST API against a real `jupyter server` and the real PostgreSQL."""

from __future__ import annotations

import base64
import concurrent.futures
import http.client
import json
import time
import uuid

import pyarrow as pa
import requests

from tests.query_cache.conftest import Server, wait_for


def uniq() -> str:
    return uuid.uuid4().hex[:8]


def test_miss_then_hit_with_max_age_and_refresh(server):
    sql = f"select id, name, price from items where id <= 10 /* {uniq()} */ order by id"
    first = server.run(sql=sql, mode="refresh")
    assert first["state"] == "done" and first["cache"] == "miss" and first["rows"] == 10
    assert first["bytes"] > 0

    reused = server.run(sql=sql, max_age=3600)
    assert reused["cache"] == "hit"
    assert reused["result_id"] == first["result_id"]

    refreshed = server.run(sql=sql, mode="refresh")
    assert refreshed["cache"] == "miss"
    assert refreshed["result_id"] != first["result_id"]

    # max_age=0 with a result that is older than 0 s -> runs again
    zero = server.run(sql=sql, max_age=0)
    assert zero["cache"] == "miss"

    table = server.result(refreshed)
    assert table.column("id").to_pylist() == list(range(1, 11))


def test_result_path_and_stream_are_the_same_bytes(server):
    status = server.run(sql=f"select * from items /* {uniq()} */ order by id", mode="refresh")
    path = server.api("GET", f"civis/queries/{status['id']}/result?format=path").json()["path"]
    assert path == status["result_path"]
    from_file = pa.ipc.open_file(pa.memory_map(path)).read_all()
    assert from_file.equals(server.result(status))
    assert from_file.num_rows == 1000


def test_a_small_result_comes_in_the_answer_once(server):
    status = server.submit(sql=f"select id, name from items /* {uniq()} */ where id <= 3", wait=5)
    assert status["state"] == "done", status
    inline = pa.ipc.open_file(pa.py_buffer(base64.b64decode(status["inline"]))).read_all()
    assert inline.equals(pa.ipc.open_file(pa.memory_map(status["result_path"])).read_all())
    assert inline.column("id").to_pylist() == [1, 2, 3]
    # once: the final poll after it answers with the file's path only, the listing never
    again = server.api("GET", f"civis/queries/{status['id']}?wait=1&final=1").json()
    assert "inline" not in again and again["result_path"] == status["result_path"]
    listed = server.api("GET", "civis/queries").json()["queries"]
    assert not any("inline" in q for q in listed)
    # a result over 32 KiB: its file only
    big = server.submit(
        sql=f"select g, md5(g::text) from generate_series(1, 5000) g /* {uniq()} */", wait=5
    )
    assert big["state"] == "done" and big["bytes"] > 32 << 10 and "inline" not in big


def test_reproducible_survives_table_change_and_unreachable_warehouse(server, pg):
    pg.execute("create table repro (id int, v text)")
    pg.execute("insert into repro values (1, 'before')")
    sql = "select id, v from repro order by id"
    notebook = f"analysis-{uniq()}.ipynb"

    pinned = server.run(sql=sql, mode="reproducible", notebook=notebook)
    assert pinned["cache"] == "miss"
    before = server.result(pinned)

    pg.execute("update repro set v = 'after'")
    again = server.run(sql=sql, mode="reproducible", notebook=notebook)
    assert again["cache"] == "hit" and again["result_id"] == pinned["result_id"]
    assert server.result(again).equals(before)

    fresh = server.run(sql=sql, mode="refresh", notebook=f"report-{uniq()}.ipynb")
    assert fresh["cache"] == "miss"
    assert server.result(fresh).column("v").to_pylist() == ["after"]

    pg.set_reachable(False)
    try:
        offline = server.run(sql=sql, mode="reproducible", notebook=notebook)
        assert offline["state"] == "done" and offline["cache"] == "hit"
        assert server.result(offline).equals(before)

        refused = server.run(sql=sql, mode="refresh", notebook=notebook)
        assert refused["state"] == "failed"
        assert "cannot reach warehouse 'default'" in refused["error"]
    finally:
        pg.set_reachable(True)


def test_sql_error_gives_warehouse_message_and_caches_nothing(server):
    sql = f"select no_such_column from items /* {uniq()} */"
    failed = server.run(sql=sql, mode="refresh")
    assert failed["state"] == "failed"
    assert 'column "no_such_column" does not exist' in failed["error"]
    assert failed["result_id"] is None
    # nothing was stored: a max_age lookup runs (and fails) again instead of hitting
    again = server.run(sql=sql, max_age=3600)
    assert again["cache"] == "miss" and again["state"] == "failed"


def test_unreachable_warehouse_is_a_clear_error(server):
    status = server.run(sql="select 1", connection="down")
    assert status["state"] == "failed"
    assert status["error"].startswith("cannot reach warehouse 'down'")


def test_credentials_never_leak(server):
    ok = server.run(sql=f"select 1 as one /* {uniq()} */", connection="secret")
    assert ok["state"] == "done"
    bad = server.run(sql="select from_nowhere", connection="secret")
    assert bad["state"] == "failed"
    listing = server.api("GET", "civis/queries").text
    assert "not-a-real-password" not in listing
    assert "not-a-real-password" not in server.log_path.read_text()


def test_result_over_size_limit_is_refused(server):
    sql = f"select g, repeat('x', 200) from generate_series(1, 100000) g /* {uniq()} */"
    status = server.run(sql=sql, mode="refresh")
    assert status["state"] == "failed"
    assert "QueryCache.max_result_bytes" in status["error"]
    assert status["result_id"] is None


def test_bad_input_is_400_naming_the_field(server):
    cases = [
        ({"sql": "select 1", "connection": "nope"}, "connection"),
        ({"sql": "select 1", "mode": "sometimes"}, "mode"),
        ({"sql": "", "mode": "refresh"}, "sql"),
        ({"sql": "select 1", "max_age": -1}, "max_age"),
        ({"sql": "select $1::int", "params": {"a": 1}}, "params"),
        ({"sql": "select 1", "wait": 6}, "wait"),
        ({"sql": "select 1", "wait": "soon"}, "wait"),
    ]
    before = len(server.api("GET", "civis/queries").json()["queries"])
    for body, field in cases:
        r = server.api("POST", "civis/queries", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["field"] == field
        assert field in r.json()["message"]
    r = server.api("POST", "civis/queries", data=b"not json")
    assert r.status_code == 400 and r.json()["field"] == "body"
    assert len(server.api("GET", "civis/queries").json()["queries"]) == before


def test_status_wait_final_answers_once_the_query_ends(server):
    status = server.submit(sql=f"select 1 /* {uniq()} */")
    r = server.api("GET", f"civis/queries/{status['id']}?wait=30&final=1")
    assert r.json()["state"] == "done" and r.json()["rows"] == 1
    # a long one answers after the wait, still running
    status = server.submit(sql="select pg_sleep(30)")
    r = server.api("GET", f"civis/queries/{status['id']}?wait=0.3&final=1")
    assert r.json()["state"] in ("queued", "running"), r.text
    assert server.api("POST", f"civis/queries/{status['id']}/cancel").status_code == 200


def test_submit_with_wait_answers_done_and_a_dropped_connection_cancels(server, pg):
    r = server.api("POST", "civis/queries", json={"sql": f"select 1 /* {uniq()} */", "wait": 5})
    assert r.status_code == 201 and r.json()["state"] == "done" and r.json()["rows"] == 1

    # the kernel client's interrupt while its submit waits: it closes the connection
    marker = f"cancel_drop_{uniq()}"
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps({"sql": f"select pg_sleep(60), '{marker}'", "mode": "refresh", "wait": 5})
    conn.request("POST", "/civis/queries", body, {"Authorization": f"token {server.token}"})
    wait_for(lambda: pg.active(marker), 20, message="the query to reach PostgreSQL")
    conn.close()
    wait_for(lambda: not pg.active(marker), 5, message="pg_stat_activity to drop the query")
    status = next(
        q for q in server.api("GET", "civis/queries").json()["queries"] if marker in q["sql"]
    )
    assert status["state"] == "cancelled"


def test_api_requires_authentication(server):
    assert requests.get(server.url + "civis/queries", timeout=10).status_code == 403
    r = requests.post(server.url + "civis/queries", json={"sql": "select 1"}, timeout=10)
    assert r.status_code in (403, 401)


def test_parameters_are_passed_and_keyed(server):
    a = server.run(sql="select name from items where id = $1", params=[3], mode="refresh")
    b = server.run(sql="select name from items where id = $1", params=[4], max_age=3600)
    assert b["cache"] == "miss"
    assert server.result(a).column("name").to_pylist() == ["item 3"]
    assert server.result(b).column("name").to_pylist() == ["item 4"]


def test_cancel_from_api_stops_the_warehouse_query(server, pg):
    marker = f"cancel_api_{uniq()}"
    status = server.submit(sql=f"select pg_sleep(60), '{marker}'", mode="refresh")
    wait_for(lambda: pg.active(marker), 20, message="query to reach PostgreSQL")
    t0 = time.monotonic()
    r = server.api("POST", f"civis/queries/{status['id']}/cancel")
    assert r.status_code == 200
    wait_for(lambda: not pg.active(marker), 2.0, message="pg_stat_activity to drop the query")
    assert time.monotonic() - t0 < 2.0
    final = server.wait_final(r.json())
    assert final["state"] == "cancelled"


def test_ten_concurrent_identical_queries_execute_once(server, pg):
    table = f"calls_{uniq()}"
    pg.execute(f"create table {table} (at timestamptz default now())")
    pg.execute(
        f"create function {table}_f() returns int language plpgsql volatile as $$ "
        f"begin insert into {table} default values; perform pg_sleep(0.5); return 42; end $$"
    )
    sql = f"select {table}_f() as answer"

    def one(_):
        return server.run(sql=sql, mode="refresh")

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(one, range(10)))
    assert all(r["state"] == "done" for r in results)
    assert len({r["result_id"] for r in results}) == 1
    assert sum(r["shared"] for r in results) == 9
    assert pg.execute(f"select count(*) from {table}")[0][0] == 1


def test_duckdb_and_sqlalchemy_connections(tmp_path_factory):
    import sqlite3

    import duckdb

    base = tmp_path_factory.mktemp("qc-duck")
    path = base / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create table t as select range as i, 'v' || range as s from range(5)")
    con.close()
    lite = base / "other.sqlite"
    with sqlite3.connect(lite) as c:
        c.execute("create table t (i integer, s text)")
        c.executemany("insert into t values (?, ?)", [(i, f"w{i}") for i in range(5)])
    from jupyterhub_civis.query_cache.demo_data import make_demo_warehouse

    demo = make_demo_warehouse(str(base / "demo.duckdb"), rows=1000)
    s = Server(
        base,
        connections={
            "default": f"duckdb:///{path}",
            "lite": f"sqlite:///{lite}",
            "demo": f"duckdb:///{demo}",
        },
        query_cache={"store_dir": str(base / "store")},
    ).start()
    try:
        status = s.run(sql="select * from t where i >= $min order by i", params={"min": 2})
        assert status["state"] == "done", status
        assert s.result(status).column("s").to_pylist() == ["v2", "v3", "v4"]
        other = s.run(
            sql="select s from t where i < :n order by i", params={"n": 2}, connection="lite"
        )
        assert other["state"] == "done", other
        assert s.result(other).column("s").to_pylist() == ["w0", "w1"]
        sales = s.run(
            sql="select region, count(*) as n from sales join regions using (region_id) "
            "group by region order by region",
            connection="demo",
        )
        assert sales["state"] == "done", sales
        assert sum(s.result(sales).column("n").to_pylist()) == 1000
        bad = s.run(sql="select nope from t", connection="lite")
        assert bad["state"] == "failed" and "no such column" in bad["error"]
    finally:
        s.stop()


def test_cancelling_one_of_two_shared_callers_keeps_the_query_for_the_other(server, pg):
    marker = f"shared_cancel_{uniq()}"
    sql = f"select pg_sleep(1.5) as slept, '{marker}' as m"
    first = server.submit(sql=sql, mode="refresh")
    second = server.submit(sql=sql, mode="refresh")
    assert second["shared"]
    wait_for(lambda: pg.active(marker), 20, message="the query to reach PostgreSQL")
    cancelled = server.api("POST", f"civis/queries/{first['id']}/cancel").json()
    assert cancelled["state"] == "cancelled"
    done = server.wait_final(second)
    assert done["state"] == "done" and done["rows"] == 1
    assert server.wait_final(cancelled)["state"] == "cancelled"


def test_the_kernel_client_keeps_its_connection_and_replaces_a_dead_one(server):
    import socket
    import urllib.parse

    from jupyterhub_civis.query_cache import client

    info = client.ServerInfo(server.url, server.token)
    netloc = urllib.parse.urlsplit(server.url).netloc
    sql = f"select 1 as v /* {uniq()} */"
    assert client.query(sql, server=info, mode="refresh", progress=False).v.tolist() == [1]
    (kept,) = client._Api._idle[("http", netloc)]
    assert client.query(sql, server=info, mode="refresh", progress=False).v.tolist() == [1]
    assert client._Api._idle[("http", netloc)] == [kept]  # one connection for both
    kept.sock.shutdown(socket.SHUT_RDWR)  # as if the server had dropped it while idle
    assert client.query(sql, server=info, mode="refresh", progress=False).v.tolist() == [1]
    (replaced,) = client._Api._idle[("http", netloc)]
    assert replaced is not kept
