"""Every statement wrapper of every driver survives a trailing ``--`` comment, and
PostgreSQL sessions are pooled: reused when clean, reset between queries, and
discarded after a cancel or a failure (real PostgreSQL, DuckDB and SQLite)."""

from __future__ import annotations

import sqlite3
import uuid

import duckdb
import pytest

from tests.query_cache.conftest import Server, wait_for


@pytest.fixture(scope="module")
def drivers(pg, tmp_path_factory):
    base = tmp_path_factory.mktemp("qc-drivers")
    duck = base / "w.duckdb"
    con = duckdb.connect(str(duck))
    con.execute("create table t as select 1 as v")
    con.close()
    lite = base / "w.sqlite"
    with sqlite3.connect(lite) as c:
        c.execute("create table t (v integer)")
        c.execute("insert into t values (1)")
    s = Server(
        base,
        connections={"default": pg.url, "duck": f"duckdb:///{duck}", "lite": f"sqlite:///{lite}"},
        query_cache={"store_dir": str(base / "store"), "warehouse_idle_timeout": 2.0},
    ).start()
    try:
        yield s
    finally:
        s.stop()


@pytest.mark.parametrize(
    "connection, sql, expected",
    [
        # ADBC's COPY (...) TO STDOUT
        ("default", "select 1 as v\n-- note", [{"v": 1}]),
        ("default", "select 1 as v -- note;", [{"v": 1}]),
        ("default", "select 1 as v;\n", [{"v": 1}]),
        # the cast wrapper (a type ADBC cannot decode) inside COPY
        ("default", "select '10.0.0.1'::inet as v\n-- note", [{"v": "10.0.0.1"}]),
        # parameters: described and executed with them
        ("default", "select $1::int + 1 as v -- note", [{"v": 2}]),
        ("duck", "select v from t\n-- note", [{"v": 1}]),
        ("duck", "select v from t;", [{"v": 1}]),
        ("lite", "select v from t\n-- note", [{"v": 1}]),
    ],
)
def test_trailing_comment_and_semicolon_in_every_wrapper(drivers, connection, sql, expected):
    params = [1] if "$1" in sql else None
    status = drivers.run(sql=sql, connection=connection, params=params, mode="refresh")
    assert status["state"] == "done", status
    assert drivers.result(status).to_pylist() == expected


def backend_pid(server) -> int:
    status = server.run(sql="select pg_backend_pid() as pid", mode="refresh")
    assert status["state"] == "done", status
    return server.result(status).column("pid")[0].as_py()


def alive(pg, pid) -> bool:
    return bool(pg.execute("select 1 from pg_stat_activity where pid = %s", (pid,)))


def test_a_clean_session_is_reused_and_reset(drivers):
    first = backend_pid(drivers)
    assert backend_pid(drivers) == first  # pooled: no new connection for this miss
    changed = drivers.run(
        sql="select set_config('search_path', 'nowhere', false) as s", mode="refresh"
    )
    assert changed["state"] == "done", changed
    after = drivers.run(sql="select current_setting('search_path') as s", mode="refresh")
    assert drivers.result(after).column("s")[0].as_py() == '"$user", public'
    assert backend_pid(drivers) == first  # the same session, reset


def test_a_failed_query_session_is_discarded(drivers, pg):
    pid = backend_pid(drivers)
    failed = drivers.run(sql="select 1/0", mode="refresh")
    assert failed["state"] == "failed" and "division by zero" in failed["error"]
    wait_for(lambda: not alive(pg, pid), 10, message="the failed session to be closed")
    assert backend_pid(drivers) != pid


def test_a_cancelled_query_session_is_never_reused(drivers, pg):
    marker = f"pool_cancel_{uuid.uuid4().hex[:8]}"
    status = drivers.submit(sql=f"select pg_sleep(60), '{marker}'", mode="refresh")
    wait_for(lambda: pg.active(marker), 20, message="the query to reach PostgreSQL")
    ((pid, _, _),) = pg.active(marker)
    r = drivers.api("POST", f"civis/queries/{status['id']}/cancel")
    assert r.status_code == 200, r.text
    assert drivers.wait_final(status)["state"] == "cancelled"
    wait_for(lambda: not alive(pg, pid), 10, message="the cancelled session to be closed")
    # the next query gets a clean session that works
    assert backend_pid(drivers) != pid


def test_idle_sessions_close_after_the_idle_timeout(drivers, pg):
    pid = backend_pid(drivers)
    assert alive(pg, pid)
    # warehouse_idle_timeout is 2 s here: the server's pruner closes it unasked
    wait_for(lambda: not alive(pg, pid), 30, message="the idle session to be closed")


def test_a_pooled_session_ended_while_idle_is_replaced(drivers, pg):
    """Sessions are reset when given back, not checked before reuse: a session the
    warehouse ended while it sat idle fails the (side-effect free) describe, or the
    execute of a statement run undescribed (nothing ran on a dead session); either
    is then repeated on a new session: the query works."""
    pid = backend_pid(drivers)
    pg.execute("select pg_terminate_backend(%s)", (pid,))
    wait_for(lambda: not alive(pg, pid), 10, message="the pooled session to end")
    assert backend_pid(drivers) != pid


def test_a_statement_run_undescribed_never_returns_wire_bytes(drivers, pg):
    """A statement described once as needing no casts runs undescribed next time; if
    its types changed meanwhile to one ADBC cannot decode, that run fails (no bytes,
    no second execution) and the next run describes it again and casts."""
    table = f"plain_{uuid.uuid4().hex[:8]}"
    pg.execute(f"create table {table} (v text)")
    pg.execute(f"insert into {table} values ('10.0.0.1')")
    sql = f"select v from {table}"
    first = drivers.run(sql=sql, mode="refresh")
    assert drivers.result(first).to_pylist() == [{"v": "10.0.0.1"}]
    pg.execute(f"alter table {table} alter column v type inet using v::inet")
    changed = drivers.run(sql=sql, mode="refresh")
    assert changed["state"] == "failed" and "column types changed" in changed["error"]
    again = drivers.run(sql=sql, mode="refresh")
    assert again["state"] == "done", again
    assert drivers.result(again).to_pylist() == [{"v": "10.0.0.1"}]
