"""Benchmark: the query cache against what users do today, side by side in one run.

Against the local PostgreSQL (``CIVIS_BENCH_PG``, default
postgresql://postgres@127.0.0.1:5432), a fresh database with a 1M-row x
10-column table, and a real `jupyter server` with the query cache extension:

  (a) pandas.read_sql via SQLAlchemy + psycopg      (what users do today)
  (b) ADBC fetch_arrow_table + to_pandas            (the best direct fetch)
  (c) our client, cache miss (mode="refresh")
  (d) our client, cache hit  (max_age)
  (e) the limit: the stored Arrow IPC file, memory-mapped + to_pandas
  and the server's peak RSS during a miss. Then, with a real JupyterHub running
  the civis result service (SQLite + local folder) and servers using it as
  their durable tier:
  (f) our client, a hit served from the service to a server whose hot tier is
      cold (a new server with an empty hot folder each round; its start is not timed)
  (g) our client, a miss on a service-backed server (warehouse + hot tier + upload)
  and, for short queries and large SQL texts:
  (i) our client, ``select 1`` miss (pooled warehouse session)
  (j) pandas.read_sql ``select 1`` on a pooled SQLAlchemy engine
  (k) our client, a hit for a 1 MB SQL text (a 150,000-item IN list)
  (l) pandas.read_sql running that 1 MB SQL

Median of N interleaved rounds (``--repeat``, default 5; read_sql runs in 3 of them).
The last line is machine-readable:
hit_vs_limit=<d/e> hit_speedup_vs_read_sql=<a/d> miss_vs_adbc=<c/b> miss_speedup_vs_read_sql=<a/c>
service_hit_vs_limit=<f/e> service_http_hit_vs_limit=<g/e>
small_miss_vs_read_sql=<i/j> hit_1mb_sql_vs_read_sql=<k/l>
Not a test: run it by hand, `python bench/query_cache.py` (`make bench`);
``--only small-miss`` runs the (i)/(j) pair alone (4 x --repeat interleaved
rounds, no 1M-row table) and prints ``small_miss_vs_read_sql=``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pyarrow as pa

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

PG = os.environ.get("CIVIS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
ROWS = 1_000_000
SQL = "select * from bench_1m"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_table(db_url):
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute(
            f"""create table bench_1m as select
                 g::bigint as id,
                 (g % 1000)::int as i1,
                 (g * 7 % 100000)::bigint as i2,
                 (g * 0.5)::float8 as f1,
                 random()::float8 as f2,
                 ('name ' || (g % 5000))::text as s1,
                 md5(g::text) as s2,
                 timestamp '2024-01-01' + (g || ' seconds')::interval as ts,
                 (g % 2 = 0) as b,
                 (g % 97)::numeric(10,2)::float8 as f3
               from generate_series(1, {ROWS}) g"""
        )
        c.execute("analyze bench_1m")


def start_server(tmp, db_url, env=None):
    """A `jupyter server` with the query cache in ``tmp``; ``env`` adds environment
    (``CIVIS_SERVICE_URL`` + ``JUPYTERHUB_API_TOKEN`` make the service its durable tier)."""
    os.makedirs(tmp, exist_ok=True)
    port, token = free_port(), secrets.token_hex(16)
    config = {
        "ServerApp": {
            "jpserver_extensions": {"jupyterhub_civis.query_cache": True, "jupyterlab": False},
            "ip": "127.0.0.1",
            "port": port,
            "port_retries": 0,
            "open_browser": False,
            "allow_root": True,
            "root_dir": tmp,
        },
        "IdentityProvider": {"token": token},
        "QueryCache": {
            "connections": {"default": db_url},
            "store_dir": os.path.join(tmp, "store"),
            "max_store_bytes": 4 * 1024**3,
        },
    }
    cfg = os.path.join(tmp, "jupyter_server_config.json")
    with open(cfg, "w") as f:
        json.dump(config, f)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "CIVIS_"))},
        **(env or {}),
        "JUPYTER_CONFIG_DIR": tmp,
        "JUPYTER_RUNTIME_DIR": os.path.join(tmp, "rt"),
    }
    log = open(os.path.join(tmp, "server.log"), "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--config", cfg], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            req = urllib.request.Request(
                url + "api/status", headers={"Authorization": f"token {token}"}
            )
            urllib.request.urlopen(req, timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"jupyter server did not start; see {tmp}/server.log") from None
            time.sleep(0.1)
    return proc, url, token


def stop_server(proc):
    proc.terminate()
    proc.wait(20)


class ServiceHub:
    """A real JupyterHub running the civis result service, and a user's token for it."""

    def __init__(self, tmp):
        from civis_service_support import service_config, wait_service
        from civis_test_support import start_hub

        port = free_port()
        self.state = Path(tmp) / "hub"
        socket = str(self.state / "civis.sock")
        config = service_config(
            port, [f"--data-dir={self.state / 'service-data'}"], handoff_socket=socket
        )
        self.hub = start_hub(self.state, config)
        self.url = f"http://127.0.0.1:{port}/services/civis/"
        wait_service(self.url)
        user = self.hub.create_user("bench")
        self.http_env = {
            "CIVIS_SERVICE_URL": self.url,
            "JUPYTERHUB_API_TOKEN": self.hub.user_token(user),
        }
        self.env = {**self.http_env, "CIVIS_SERVICE_HANDOFF_SOCKET": socket}

    def stop(self):
        from civis_test_support import stop_hub

        stop_hub(self.hub)


def rss_mb(pid, field="VmHWM"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak(pid):
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="rounds (read_sql runs in 3 at most)")
    ap.add_argument(
        "--only",
        choices=["small-miss"],
        help="small-miss: only the select 1 pair (i) and (j), side by side, "
        "4x --repeat interleaved rounds, no 1M-row table",
    )
    args = ap.parse_args()

    import adbc_driver_postgresql.dbapi as adbc
    import pandas as pd
    import sqlalchemy as sa

    from jupyterhub_civis.query_cache.client import ServerInfo, query

    dbname = f"civis_qc_bench_{uuid.uuid4().hex[:8]}"
    import psycopg

    with psycopg.connect(PG + "/postgres", autocommit=True) as c:
        c.execute(f'create database "{dbname}"')
    db_url = f"{PG}/{dbname}"
    tmp = tempfile.mkdtemp(prefix="civis-qc-bench-")
    proc = None
    try:
        n = args.repeat
        engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
        if args.only == "small-miss":
            proc, url, token = start_server(tmp, db_url)
            return small_miss_only(ServerInfo(url, token), engine, 4 * n)
        t0 = time.perf_counter()
        create_table(db_url)
        print(f"created {ROWS:,} x 10 table in {time.perf_counter() - t0:.1f} s", flush=True)
        proc, url, token = start_server(tmp, db_url)
        server = ServerInfo(url, token)

        def read_sql():
            with engine.connect() as conn:
                return pd.read_sql(sa.text(SQL), conn)

        def adbc_direct():
            with adbc.connect(db_url) as conn, conn.cursor() as cur:
                cur.execute(SQL)
                return cur.fetch_arrow_table().to_pandas()

        def miss():
            return query(SQL, mode="refresh", server=server, progress=False)

        def hit():
            return query(SQL, max_age=3600, server=server, progress=False)

        # Interleaved rounds, so load from anything else on the machine hits every
        # path alike; the slow read_sql runs in the first 3 rounds only.
        times = {k: [] for k in "abcdefghijkl"}
        peaks = []
        idle = rss_mb(proc.pid, "VmRSS")
        can_reset = reset_peak(proc.pid)

        def clock(k, fn):
            t0 = time.perf_counter()
            out = fn()
            times[k].append(time.perf_counter() - t0)
            return out

        for i in range(n):
            print(f"round {i + 1}/{n}", flush=True)
            if i < 3:
                clock("a", read_sql)
            clock("b", adbc_direct)
            reset_peak(proc.pid)
            df = clock("c", miss)
            peaks.append(rss_mb(proc.pid))
            assert len(df) == ROWS and df.shape[1] == 10

        req = urllib.request.Request(
            url + "civis/queries", headers={"Authorization": f"token {token}"}
        )
        latest = json.loads(urllib.request.urlopen(req).read())["queries"][0]
        path = latest["result_path"]

        def limit():
            return pa.ipc.open_file(pa.memory_map(path, "r")).read_all().to_pandas()

        for _ in range(max(n, 5)):
            assert len(clock("d", hit)) == ROWS
            clock("e", limit)

        big = (
            "select count(*) as n from bench_1m where id in ("
            + ", ".join(str(i * 3) for i in range(150_000))
            + ")"
        )
        assert len(big) > 1_000_000

        small_miss, small_read_sql = small_pair(server, engine)

        def big_hit():
            return query(big, max_age=3600, server=server, progress=False)

        def big_read_sql():
            with engine.connect() as conn:
                return pd.read_sql(sa.text(big), conn)

        small_miss(), small_read_sql()  # warm: a pooled session on both sides
        assert big_hit().n[0] == big_read_sql().n[0]  # the first is a miss that stores it
        for _ in range(max(n, 5) * 2):
            clock("j", small_read_sql)
            clock("i", small_miss)
            clock("l", big_read_sql)
            clock("k", big_hit)

        print("starting a hub with the civis result service", flush=True)
        service = ServiceHub(tmp)
        try:
            writer, writer_url, writer_token = start_server(
                os.path.join(tmp, "service-writer"), db_url, service.env
            )
            writer_server = ServerInfo(writer_url, writer_token)
            try:
                for _ in range(n):
                    df = clock(
                        "h",
                        lambda: query(SQL, mode="refresh", server=writer_server, progress=False),
                    )
                    assert len(df) == ROWS
            finally:
                stop_server(writer)
            for i in range(2 * max(n, 5)):  # alternate: same host, HTTP, same host, ...
                label, env = ("f", service.env) if i % 2 == 0 else ("g", service.http_env)
                cold, cold_url, cold_token = start_server(
                    os.path.join(tmp, f"service-reader-{i}"), db_url, env
                )
                try:
                    cold_server = ServerInfo(cold_url, cold_token)
                    # a warm process with a cold hot tier: one unrelated query first
                    query("select 1 as warm_up", mode="refresh", server=cold_server, progress=False)
                    df = clock(
                        label,
                        lambda s=cold_server: query(SQL, max_age=3600, server=s, progress=False),
                    )
                    assert len(df) == ROWS
                    status = json.loads(
                        urllib.request.urlopen(
                            urllib.request.Request(
                                cold_url + "civis/queries",
                                headers={"Authorization": f"token {cold_token}"},
                            )
                        ).read()
                    )["queries"][0]
                    assert status["cache"] == "hit", status
                finally:
                    stop_server(cold)
        finally:
            service.stop()

        labels = {
            "a": "(a) pandas.read_sql",
            "b": "(b) ADBC + to_pandas",
            "c": "(c) our client, miss",
            "d": "(d) our client, hit",
            "e": "(e) limit: mmap file + to_pandas",
            "f": "(f) service hit, cold, same host",
            "g": "(g) service hit, cold, HTTP",
            "h": "(h) service-backed miss",
            "i": "(i) our client, select 1 miss",
            "j": "(j) read_sql select 1, pooled",
            "k": "(k) our client, hit, 1 MB SQL",
            "l": "(l) read_sql, 1 MB SQL",
        }
        results = {k: statistics.median(v) for k, v in times.items()}
        for k, label in labels.items():
            runs = ", ".join(f"{t:.3f}" for t in times[k])
            print(f"{label:<34} median {results[k]:.3f} s  ({runs})")
        print(
            f"server peak RSS during a miss: {statistics.median(peaks):.0f} MB (idle before: {idle:.0f} MB)"
            + ("" if can_reset else " (process lifetime peak: could not reset VmHWM)")
            + f"; stored file {os.path.getsize(path) / 1e6:.0f} MB",
            flush=True,
        )
        a, b, c, d, e, f, g, h, i, j, k, m = (results[x] for x in "abcdefghijkl")
        print(f"service-backed miss vs plain miss: {h / c:.2f}")
        print(
            f"hit_vs_limit={d / e:.2f} hit_speedup_vs_read_sql={a / d:.1f} "
            f"miss_vs_adbc={c / b:.2f} miss_speedup_vs_read_sql={a / c:.1f} "
            f"service_hit_vs_limit={f / e:.2f} service_http_hit_vs_limit={g / e:.2f} "
            f"small_miss_vs_read_sql={i / j:.2f} hit_1mb_sql_vs_read_sql={k / m:.2f}"
        )
    finally:
        if proc is not None:
            stop_server(proc)
        with psycopg.connect(PG + "/postgres", autocommit=True) as c:
            c.execute(f'drop database if exists "{dbname}" with (force)')
        subprocess.run(["rm", "-rf", tmp])


SMALL = "select 1 as one"


def small_pair(server, engine):
    """(i) and (j): a ``select 1`` miss through the cache, and pooled read_sql."""
    import pandas as pd
    import sqlalchemy as sa

    from jupyterhub_civis.query_cache.client import query

    def small_miss():
        return query(SMALL, mode="refresh", server=server, progress=False)

    def small_read_sql():
        with engine.connect() as conn:  # the engine's pool: a warm connection
            return pd.read_sql(sa.text(SMALL), conn)

    return small_miss, small_read_sql


def small_miss_only(server, engine, rounds):
    small_miss, small_read_sql = small_pair(server, engine)
    small_miss(), small_read_sql()  # warm: a pooled session on both sides
    times = {"i": [], "j": []}
    for _ in range(rounds):
        for k, fn in (("j", small_read_sql), ("i", small_miss)):
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    i, j = (statistics.median(times[k]) for k in "ij")
    for k, label in (
        ("i", "(i) our client, select 1 miss"),
        ("j", "(j) read_sql select 1, pooled"),
    ):
        q = statistics.quantiles(times[k], n=4)
        print(
            f"{label:<34} median {statistics.median(times[k]) * 1e3:.2f} ms "
            f"(quartiles {q[0] * 1e3:.2f}–{q[2] * 1e3:.2f} ms, {rounds} rounds)"
        )
    print(f"small_miss_vs_read_sql={i / j:.2f}")


if __name__ == "__main__":
    main()
