"""The durable store directly: migrations keep data, atomic uploads, orphan cleanup,
retention — with SQLite + a local folder and with PostgreSQL + s3:// (moto)."""

import time
import uuid

import pytest
import sqlalchemy as sa
from civis_service_support import arrow_stream
from civis_test_support import wait_for

from jupyterhub_civis.service.migrations import current
from jupyterhub_civis.service.store import DurableStore, NotFound, Pinned


@pytest.fixture(params=["sqlite-local", "postgresql-s3"])
def make_store(request, tmp_path):
    if request.param == "sqlite-local":
        db, blobs, opts = f"sqlite:///{tmp_path}/meta.sqlite", str(tmp_path / "blobs"), {}
    else:
        pg = request.getfixturevalue("fresh_pg_url")
        s3 = request.getfixturevalue("moto_s3")
        db = pg
        blobs = f"s3://{s3['bucket']}/store-{uuid.uuid4().hex[:8]}"
        opts = s3["options"]
    stores = []

    def make(**kw):
        s = DurableStore(db, blobs, storage_options=opts, **kw)
        stores.append(s)
        return s

    yield make
    for s in stores:
        s.close()


def put(store, owner, body=None, key="k"):
    up = store.begin_upload(owner)
    body = body if body is not None else arrow_stream(100)
    for i in range(0, len(body), 1000):
        up.write(body[i : i + 1000])
    return store.commit_upload(up, key=key, sql="select 1", connection="c", rows=100)


def read(store, rid):
    with store.open_blob(rid) as f:
        return f.read()


def test_roundtrip_and_reopen_keeps_data(make_store):
    s = make_store()
    body = arrow_stream(300)
    info = put(s, "alice", body)
    s.pin("alice", info.id, "nb.ipynb")
    assert current(s.engine) == "0005_report_shares"  # the newest migration
    s2 = make_store()  # a restart: migrations run again, data stays
    assert [i.id for i in s2.list("alice")] == [info.id]
    assert s2.get("alice", info.id).pins == ["nb.ipynb"]
    assert read(s2, info.id) == body
    with pytest.raises(NotFound):
        s2.get("bob", info.id)
    with pytest.raises(Pinned):
        s2.delete("alice", info.id)


def test_interrupted_upload_is_invisible_and_cleaned(make_store):
    s = make_store(upload_stale_after=0.2)
    up = s.begin_upload("alice")
    up.write(arrow_stream(100)[:500])
    if hasattr(up._file, "flush"):
        up._file.flush(force=True) if "s3" in type(s.fs).__name__.lower() else up._file.flush()
    # the writer "dies" here: nothing visible
    assert s.list("alice") == []
    with pytest.raises(NotFound):
        s.get("alice", up.id)
    # an orphan blob with no row at all is removed too
    orphan = uuid.uuid4().hex
    with s.fs.open(s.blob_path(orphan), "wb") as f:
        f.write(b"torn")
    removed = set()

    def cleaned():  # the dead writer's heartbeat goes stale after 0.2 s
        removed.update(s.cleanup())
        return removed >= {up.id, orphan}

    wait_for(cleaned, timeout=30, message="stale upload and orphan removed")
    assert not s.blob_exists(up.id) and not s.blob_exists(orphan)
    with s.session() as sess:
        assert sess.execute(sa.text("select count(*) from civis_uploads")).scalar() == 0


def test_an_upload_that_commits_while_cleanup_judges_it_stale_keeps_its_blob(make_store):
    """Cleanup lists an upload whose heartbeat is stale, the writer commits it, then
    cleanup gets to it: the committed result keeps its bytes (the stale check is made
    again in the statement that deletes the upload's row)."""
    s = make_store(upload_stale_after=300)
    up = s.begin_upload("alice")
    body = arrow_stream(100)
    up.write(body)
    listed_at = time.time() + 600  # as cleanup would see it: stale
    info = s.commit_upload(up, key="k", sql="", connection="", rows=1)
    assert s.forget_upload(up.id, stale_before=listed_at - 300) is False
    assert read(s, info.id) == body
    # one that really stayed stale goes, row and blob
    dead = s.begin_upload("alice")
    dead.write(body[:500])
    assert s.forget_upload(dead.id, stale_before=time.time() + 1) is True
    assert not s.blob_exists(dead.id)


def test_live_upload_survives_cleanup(make_store):
    s = make_store(upload_stale_after=300)
    up = s.begin_upload("alice")
    body = arrow_stream(100)
    up.write(body)
    assert up.id not in s.cleanup()
    info = s.commit_upload(up, key="k", sql="", connection="", rows=1)
    assert read(s, info.id) == body


def test_eviction_lru_and_pins(make_store):
    body = arrow_stream(200)
    s = make_store(max_total_bytes=len(body) * 2)
    a = put(s, "alice", body)
    b = put(s, "alice", body)
    s.pin("alice", a.id, "nb.ipynb")  # a: oldest, but pinned
    s.get("alice", b.id)  # b used most recently after a
    c = put(s, "bob", body)
    evicted = s.evict()
    assert evicted == [b.id]
    assert {i.id for i in s.list("alice")} == {a.id}
    assert [i.id for i in s.list("bob")] == [c.id]
    assert not s.blob_exists(b.id)
    # pressure beyond the budget still never evicts the pinned result
    for _ in range(3):
        put(s, "bob", body)
        s.evict()
    assert s.get("alice", a.id).pins == ["nb.ipynb"]
    assert s.stats()["bytes"] <= len(body) * 2


def test_make_room_evicts_only_the_owners_unpinned_results(make_store):
    body = arrow_stream(200)
    size = len(body)
    s = make_store()
    a1, a2, a3 = (put(s, "alice", body) for _ in range(3))
    b1 = put(s, "bob", body)
    s.pin("alice", a1.id, "nb.ipynb", server="etl")
    s.get("alice", a2.id)  # a2 used after a3: a3 is alice's least recently used unpinned

    room = s.make_room("alice", size, budget=3 * size)  # one result must go
    assert room.ok and room.evicted == [a3.id]
    assert {i.id for i in s.list("alice")} == {a1.id, a2.id}
    assert [i.id for i in s.list("bob")] == [b1.id]  # never another user's
    assert s.get("alice", a1.id).pinned_by == [{"ref": "nb.ipynb", "server": "etl"}]

    room = s.make_room("alice", 2 * size, budget=2 * size)  # only the pinned one is left
    assert not room.ok and room.evicted == [a2.id]
    assert (room.used, room.pinned) == (size, size)
    assert s.make_room("alice", 10**12, budget=None).ok  # no budget


def test_a_result_holds_a_bounded_number_of_pins(make_store, monkeypatch):
    from jupyterhub_civis.service import policy
    from jupyterhub_civis.service.store import TooManyPins

    monkeypatch.setattr(policy, "MAX_PINS_PER_RESULT", 3)
    s = make_store()
    info = put(s, "alice")
    for i in range(3):
        s.pin("alice", info.id, f"nb{i}.ipynb")
    s.pin("alice", info.id, "nb0.ipynb", server="other")  # re-pinning is no new pin
    with pytest.raises(TooManyPins):
        s.pin("alice", info.id, "nb3.ipynb")
    assert s.get("alice", info.id).pins == ["nb0.ipynb", "nb1.ipynb", "nb2.ipynb"]
