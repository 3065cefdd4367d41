"""LocalStore: atomic puts, crash recovery, LRU eviction that spares pins."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pytest
import sqlalchemy as sa
from civis_test_support import wait_for

from jupyterhub_civis.query_cache.local_store import (
    TMP_PREFIX,
    UNSYNCED_PREFIX,
    LocalStore,
    unsynced_table,
)
from jupyterhub_civis.query_cache.store import ResultTooLarge


def batches(n=3, rows=100):
    for i in range(n):
        yield pa.record_batch(
            {"i": pa.array(range(i * rows, (i + 1) * rows)), "s": pa.array(["x"] * rows)}
        )


SCHEMA = pa.schema([("i", pa.int64()), ("s", pa.string())])


def files(store):
    return sorted(n for n in os.listdir(store.directory) if n.endswith(".arrow"))


def test_put_get_latest(tmp_path):
    store = LocalStore(str(tmp_path))
    seen = []
    r = store.put("k", SCHEMA, batches(), on_progress=lambda rows, b: seen.append(rows))
    assert seen == [100, 200, 300]
    assert r.rows == 300 and r.size == os.path.getsize(r.path)
    assert store.get(r.result_id).path == r.path
    assert store.latest("k").result_id == r.result_id
    assert store.open_reader(r).read_all().column("i").to_pylist() == list(range(300))
    assert store.get("nope") is None and store.latest("other") is None


def test_failed_put_leaves_nothing(tmp_path):
    store = LocalStore(str(tmp_path))

    def broken():
        yield from batches(1)
        raise RuntimeError("warehouse went away")

    with pytest.raises(RuntimeError):
        store.put("k", SCHEMA, broken())
    assert store.latest("k") is None
    assert files(store) == [] and not any(n.startswith(TMP_PREFIX) for n in os.listdir(tmp_path))


def test_size_limit(tmp_path):
    store = LocalStore(str(tmp_path))
    with pytest.raises(ResultTooLarge):
        store.put("k", SCHEMA, batches(50), max_bytes=2000)
    assert store.latest("k") is None and files(store) == []


def test_recover_after_crash_mid_write(tmp_path):
    """A process killed while writing leaves a temp file; a restart removes it, no entry appears."""
    code = f"""
import os, signal, pyarrow as pa
from jupyterhub_civis.query_cache.local_store import LocalStore
store = LocalStore({str(tmp_path)!r})
def gen():  # more than PendingFile.small_bytes: streamed to a temp file as it comes
    yield pa.record_batch({{"i": pa.array(range(200_000))}})
    os.kill(os.getpid(), signal.SIGKILL)
store.put("k", pa.schema([("i", pa.int64())]), gen())
"""
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == -9
    assert any(n.startswith(TMP_PREFIX) for n in os.listdir(tmp_path))
    # an orphan final file (renamed but never committed) is removed too
    (tmp_path / "deadbeef.arrow").write_bytes(b"torn")
    store = LocalStore(str(tmp_path))
    assert store.latest("k") is None
    assert not any(n.startswith(TMP_PREFIX) or n.endswith(".arrow") for n in os.listdir(tmp_path))


def test_recover_drops_rows_without_files(tmp_path):
    store = LocalStore(str(tmp_path))
    r = store.put("k", SCHEMA, batches())
    os.unlink(r.path)
    assert LocalStore(str(tmp_path)).get(r.result_id) is None


def test_lru_eviction_never_evicts_pinned(tmp_path):
    store = LocalStore(str(tmp_path))
    a = store.put("a", SCHEMA, batches())
    b = store.put("b", SCHEMA, batches())
    c = store.put("c", SCHEMA, batches())
    store.pin(a.result_id, "nb.ipynb")
    store.get(b.result_id)  # b is now more recently used than c
    store.max_total_bytes = a.size + b.size
    assert store.evict() == [c.result_id]
    assert store.get(c.result_id) is None and not os.path.exists(c.path)
    store.max_total_bytes = 1
    assert store.evict() == [b.result_id]
    assert store.get(a.result_id) is not None  # pinned: kept over budget
    store.unpin(a.result_id, "nb.ipynb")
    assert store.evict() == [a.result_id]


def test_copy_of_a_durable_result_is_visible_before_its_fsync(tmp_path):
    store = LocalStore(str(tmp_path))
    with store.new_file() as pending:
        pending.write_batches(SCHEMA, batches())
        pending._synced = False  # as after a byte copy from the service
        copy = pending.commit("a" * 32, "k", created=5.0, durable_elsewhere=True)
    assert store.get("a" * 32) == copy and copy.created == 5.0
    assert store.open_reader(copy).read_all().num_rows == 300
    # the marker goes once the background fsync is done
    wait_for(lambda: not [n for n in os.listdir(tmp_path) if n.startswith(UNSYNCED_PREFIX)])


def test_recover_drops_copies_whose_fsync_never_finished(tmp_path):
    store = LocalStore(str(tmp_path))
    kept = store.put("k", SCHEMA, batches())
    with store.new_file() as pending:
        pending.write_batches(SCHEMA, batches())
        copy = pending.commit("b" * 32, "k2")
    # the marker a server killed before its background fsync leaves behind
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    (tmp_path / f"{UNSYNCED_PREFIX}{int(dead.stdout)}-{copy.result_id}").touch()
    alive = tmp_path / f"{UNSYNCED_PREFIX}{os.getppid()}-{kept.result_id}"
    alive.touch()  # a live writer's copy is left alone

    reopened = LocalStore(str(tmp_path))
    assert reopened.get(copy.result_id) is None and not os.path.exists(copy.path)
    assert reopened.get(kept.result_id) is not None and alive.exists()
    assert not [
        n for n in os.listdir(tmp_path) if n.startswith(f"{UNSYNCED_PREFIX}{int(dead.stdout)}")
    ]


def test_put_with_pins_is_pinned_from_the_start(tmp_path):
    store = LocalStore(str(tmp_path), max_total_bytes=1)
    pinned = store.put("k", SCHEMA, batches(), pins=["a.ipynb", "a.ipynb"])
    loose = store.put("k2", SCHEMA, batches())
    assert store.is_pinned(pinned.result_id) and not store.is_pinned(loose.result_id)
    assert store.evict() == [loose.result_id]


def test_a_written_result_is_visible_before_its_fsync_and_marked_until_then(tmp_path):
    store = LocalStore(str(tmp_path))
    result = store.put("k", SCHEMA, batches())
    assert store.open_reader(store.get(result.result_id)).read_all().num_rows == 300
    # the mark, committed with the row, goes once the background fsync is done
    wait_for(lambda: not unsynced_rows(store))
    assert LocalStore(str(tmp_path)).get(result.result_id) == result


def unsynced_rows(store):
    with store.engine.connect() as conn:
        return {(r.result_id, r.pid) for r in conn.execute(sa.select(unsynced_table))}


def test_recover_drops_results_whose_writer_died_before_their_fsync(tmp_path):
    store = LocalStore(str(tmp_path))
    torn = store.put("k", SCHEMA, batches(), pins=["a.ipynb"])
    kept = store.put("k2", SCHEMA, batches())
    wait_for(lambda: not unsynced_rows(store))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    # what a server killed between the commit and its background fsync leaves behind,
    # and the mark of a live writer (left alone)
    with store.engine.begin() as conn:
        conn.execute(unsynced_table.insert().values(result_id=torn.result_id, pid=int(dead.stdout)))
        conn.execute(unsynced_table.insert().values(result_id=kept.result_id, pid=os.getppid()))

    reopened = LocalStore(str(tmp_path))
    assert reopened.get(torn.result_id) is None and not os.path.exists(torn.path)
    assert not reopened.is_pinned(torn.result_id)
    assert reopened.get(kept.result_id) is not None
    assert unsynced_rows(reopened) == {(kept.result_id, os.getppid())}
