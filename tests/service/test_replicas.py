"""Scale-out and crashes: service processes sharing PostgreSQL + s3:// (moto) behave
as one service; a SIGKILL during an upload leaves nothing visible and no orphan."""

import threading

import pytest
import sqlalchemy as sa
from civis_service_support import arrow_stream, read_stream
from civis_test_support import wait_for

pytestmark = pytest.mark.hub


def metric(client, name):
    text = client.http.get(client.base + "metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def test_two_replicas_behave_as_one(external_hub, replicas):
    a_proc, b_proc = replicas().start(), replicas().start()
    alice = external_hub.create_user("alice")
    token = external_hub.user_token(alice)
    bob_token = external_hub.user_token(external_hub.create_user("bob"))
    a, b = a_proc.client(token), b_proc.client(token)

    body = arrow_stream(20000)
    rid = a.put_ok(body, key="q1", sql="select * from big", rows=20000)["id"]
    r = b.get(rid)  # stored through A, served by B
    assert r.status_code == 200 and r.content == body
    assert read_stream(r.content).num_rows == 20000
    assert [x["id"] for x in b.list(key="q1")] == [rid]

    assert b.pin(rid, "nb.ipynb").status_code == 200  # pinned through B ...
    assert a.delete(rid).status_code == 409  # ... seen by A
    assert a.request("GET", f"api/results/{rid}/info").json()["pins"] == ["nb.ipynb"]
    assert a.unpin(rid, "nb.ipynb").json()["pins"] == []
    assert b.request("GET", f"api/results/{rid}/info").json()["pins"] == []

    # isolation holds on every replica
    for proc in (a_proc, b_proc):
        assert proc.client(bob_token).get(rid).status_code == 404

    # the store size is the shared store's, whichever replica is asked
    assert metric(a, "civis_service_store_bytes") == metric(b, "civis_service_store_bytes")

    # deleted through B: gone on A, blob gone from s3
    assert b.delete(rid).status_code == 204
    assert a.get(rid).status_code == 404

    # survives a restart of every replica
    keep = b.put_ok(arrow_stream(10), key="q2")["id"]
    a_proc.kill()
    b_proc.kill()
    c = replicas().start().client(token)
    assert [x["id"] for x in c.list()] == [keep]
    assert c.get(keep).status_code == 200


@pytest.mark.parametrize("backend", ["sqlite-local", "postgresql-s3"])
def test_sigkill_during_upload(external_hub, replicas, moto_s3, tmp_path, backend):
    if backend == "sqlite-local":
        db_url = f"sqlite:///{tmp_path}/meta.sqlite"
        blob_dir = tmp_path / "blobs"
        blobs = str(blob_dir)
    else:
        db_url, blobs = replicas.db_url, None
    opts = ["--CivisService.upload_stale_after=1", "--CivisService.cleanup_interval=0.2"]
    proc = replicas(extra=opts, db_url=db_url, blobs=blobs).start()
    user = external_hub.create_user("crash")
    token = external_hub.user_token(user)
    client = proc.client(token)

    body = arrow_stream(200_000)
    sent_half = threading.Event()
    release = threading.Event()

    def slow_body():
        half = len(body) // 2
        for i in range(0, half, 65536):
            yield body[i : min(i + 65536, half)]
        sent_half.set()
        release.wait(60)
        yield body[half:]

    outcome = {}

    def upload():
        try:
            outcome["r"] = client.put(slow_body(), key="crash-q", rows=200_000)
        except Exception as e:  # the service dies under it
            outcome["error"] = e

    t = threading.Thread(target=upload)
    t.start()
    assert sent_half.wait(60)
    engine = sa.create_engine(db_url)
    try:

        def upload_row():
            with engine.connect() as conn:
                return conn.execute(
                    sa.text("select id from civis_uploads where owner = :o"), {"o": user}
                ).scalar()

        upload_id = wait_for(upload_row, timeout=30, message="upload in progress")
        if backend == "sqlite-local":
            partial = blob_dir / f"{upload_id}.arrow"
            wait_for(lambda: partial.exists() and partial.stat().st_size > 0, timeout=30)
        proc.kill()  # SIGKILL mid-upload
        release.set()
        t.join(60)
        assert "error" in outcome or outcome["r"].status_code >= 500

        # restart: the result is absent, the orphan goes away, the query can re-run
        proc2 = replicas(extra=opts, db_url=db_url, blobs=blobs).start()
        client2 = proc2.client(token)
        assert client2.list(key="crash-q") == []
        wait_for(lambda: upload_row() is None, timeout=30, message="stale upload cleaned")
        if backend == "sqlite-local":
            assert not partial.exists()
        else:
            import fsspec

            fs = fsspec.filesystem("s3", **moto_s3["options"])
            fs.invalidate_cache()
            path = replicas.blob_url[len("s3://") :] + f"/{upload_id}.arrow"
            assert not fs.exists(path)
        assert client2.get(upload_id).status_code == 404
        rerun = client2.put_ok(body, key="crash-q", rows=200_000)  # the query re-runs
        assert client2.get(rerun["id"]).content == body
    finally:
        release.set()
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite-local", "postgresql-s3"])
def test_pinned_result_survives_eviction_pressure(
    external_hub, replicas, request, tmp_path, backend
):
    body = arrow_stream(2000)
    if backend == "sqlite-local":
        db_url, blobs = f"sqlite:///{tmp_path}/meta.sqlite", str(tmp_path / "blobs")
    else:
        db_url, blobs = request.getfixturevalue("fresh_pg_url"), None
    budget = [f"--CivisService.max_total_bytes={len(body) * 2}"]
    c = replicas(extra=budget, db_url=db_url, blobs=blobs).start()
    token = external_hub.user_token(external_hub.create_user("evict"))
    client = c.client(token)
    pinned = client.put_ok(body, key="p")["id"]
    client.pin(pinned, "analysis.ipynb")
    others = [client.put_ok(body, key=f"u{i}")["id"] for i in range(4)]

    def settled():  # eviction runs after each commit, in the background
        ids = {x["id"] for x in client.list()}
        return ids if len(ids) <= 2 else None

    ids = wait_for(settled, timeout=30, message="eviction to the budget")
    assert pinned in ids
    assert others[-1] in ids  # the most recently used unpinned result stays
    assert client.get(pinned).content == body
    assert metric(client, "civis_service_evictions_total") >= 3
