"""SIGKILL of the server while a result is being stored: no torn entry, the query runs again."""

from __future__ import annotations

import os
import uuid

from jupyterhub_civis.query_cache.local_store import TMP_PREFIX
from jupyterhub_civis.query_cache.pending_file import PendingFile
from tests.query_cache.conftest import Server, pg_connections, wait_for


def test_sigkill_while_storing_leaves_no_torn_entry(pg, tmp_path_factory):
    base = tmp_path_factory.mktemp("qc-crash")
    store = base / "store"
    # small ADBC batches so the result reaches the store file while the query still runs
    qc = {"store_dir": str(store), "postgres_batch_size_hint_bytes": 65536}
    marker = uuid.uuid4().hex[:8]
    sql = (
        f"select g, md5(g::text) as h, '{marker}' as m from generate_series(1, 400000) g "
        "where pg_sleep(case when g % 20000 = 0 then 0.1 else 0 end) is not null"
    )
    server = Server(base, connections=pg_connections(pg), query_cache=qc, name="first").start()
    try:
        status = server.submit(sql=sql, mode="refresh")

        def storing():
            s = server.api("GET", f"civis/queries/{status['id']}").json()
            # past what is held in memory (a small result is written in one go)
            return s["state"] == "fetching" and s["bytes"] > PendingFile.small_bytes and s

        wait_for(storing, 30, message="the result to be partly stored")
        assert any(n.startswith(TMP_PREFIX) for n in os.listdir(store))
        server.kill()
    finally:
        server.stop()

    restarted = Server(base, connections=pg_connections(pg), query_cache=qc, name="second").start()
    try:
        assert not any(n.startswith(TMP_PREFIX) or n.endswith(".arrow") for n in os.listdir(store))
        again = restarted.run(sql=sql, max_age=3600)
        assert again["cache"] == "miss" and again["state"] == "done"
        assert again["rows"] == 400000
        assert restarted.result(again).num_rows == 400000
    finally:
        restarted.stop()
