"""``ServiceStore`` (the query cache's ``ResultStore`` on the service) against a real
hub and a real service process: one user's stores share results, others see none."""

import json
import os
import socket

import pyarrow as pa
import pytest
from civis_test_support import free_port

from jupyterhub_civis.query_cache.local_store import LocalStore
from jupyterhub_civis.query_cache.service_store import ServiceError, ServiceStore
from jupyterhub_civis.query_cache.store import ResultTooLarge
from jupyterhub_civis.query_cache.tiered_store import TieredStore

pytestmark = pytest.mark.hub


def batches(n=50_000, size=10_000):
    for start in range(0, n, size):
        yield pa.record_batch(
            {"i": pa.array(range(start, start + size)), "x": pa.array([1.5] * size)}
        )


SCHEMA = pa.schema([("i", pa.int64()), ("x", pa.float64())])


def test_service_store_roundtrip_and_isolation(external_hub, replicas, tmp_path):
    svc = replicas().start()
    user = external_hub.create_user("qc")
    # two "servers" of one user (two tokens), and another user
    a = ServiceStore(svc.base, external_hub.user_token(user), connection="wh")
    b = ServiceStore(svc.base, external_hub.user_token(user))
    other = ServiceStore(svc.base, external_hub.user_token(external_hub.create_user("qc2")))

    progress = []
    stored = a.put("key-1", SCHEMA, batches(), on_progress=lambda r, w: progress.append(r))
    assert stored.rows == 50_000 and progress[-1] == 50_000 and stored.path is None

    got = b.get(stored.result_id)  # stored from A, a hit in B
    assert got == stored
    assert b.latest("key-1") == stored
    table = b.open_reader(got).read_all()
    assert table.num_rows == 50_000 and table.column("i")[49_999].as_py() == 49_999

    b.pin(stored.result_id, "nb.ipynb")
    a.unpin(stored.result_id, "nb.ipynb")

    assert other.get(stored.result_id) is None and other.latest("key-1") is None
    with pytest.raises(ServiceError, match="404"):
        other.open_reader(stored)
    with pytest.raises(ServiceError, match="404"):
        other.pin(stored.result_id, "x")

    with pytest.raises(ResultTooLarge):
        a.put("key-2", SCHEMA, batches(), max_bytes=1000)
    assert a.latest("key-2") is None


def tiered(base, token, folder) -> TieredStore:
    return TieredStore(LocalStore(str(folder)), ServiceStore(base, token))


def test_tiered_store_shares_through_the_service(external_hub, replicas, tmp_path):
    svc = replicas().start()
    token = external_hub.user_token(external_hub.create_user("tier"))
    a = tiered(svc.base, token, tmp_path / "hot-a")
    b = tiered(svc.base, token, tmp_path / "hot-b")

    stored = a.put("key-1", SCHEMA, batches(), sql="select 1", connection="wh")
    assert stored.path == str(tmp_path / "hot-a" / f"{stored.result_id}.arrow")
    assert ServiceStore(svc.base, token).get(stored.result_id).rows == 50_000  # the same id

    assert b.latest("key-1").path is None  # known from the service, not fetched yet
    fetched = b.get(stored.result_id)
    assert fetched.path == str(tmp_path / "hot-b" / f"{stored.result_id}.arrow")
    assert (fetched.rows, fetched.created) == (stored.rows, stored.created)
    with open(stored.path, "rb") as x, open(fetched.path, "rb") as y:
        assert x.read() == y.read()  # the hot tier's file travelled as a byte copy
    assert b.open_reader(fetched).read_all().equals(a.open_reader(stored).read_all())
    assert b.latest("key-1") == fetched

    # a result another client sent as an Arrow IPC stream becomes a hot-tier file too
    streamed = ServiceStore(svc.base, token).put("key-2", SCHEMA, batches(1000, 100))
    local = b.get(streamed.result_id)
    assert b.open_reader(local).read_all().num_rows == 1000

    # ids the service never hands out are never sent to it
    for bad in ("../" + "0" * 29, "x" * 32, ""):
        assert b.get(bad) is None and not b.exists(bad)


def test_tiered_store_keeps_working_when_the_service_is_down(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/services/civis/"
    store = tiered(dead, "no-token", tmp_path / "hot")
    stored = store.put("key-1", SCHEMA, batches(1000, 500))
    assert stored.path and store.get(stored.result_id) == stored
    assert store.latest("key-1") == stored
    assert store.get("f" * 32) is None
    store.pin(stored.result_id, "nb.ipynb")
    assert store.hot.is_pinned(stored.result_id)


def test_same_host_handoff_links_the_blob_instead_of_copying(external_hub, replicas, tmp_path):
    sock, blobs = str(tmp_path / "handoff.sock"), tmp_path / "blobs"
    svc = replicas(
        extra=[f"--CivisService.handoff_socket={sock}"],
        db_url=f"sqlite:///{tmp_path}/meta.sqlite",
        blobs=str(blobs),
    ).start()
    token = external_hub.user_token(external_hub.create_user("handoff"))
    other_token = external_hub.user_token(external_hub.create_user("handoff-other"))

    def store(folder, token=token, socket_path=sock):
        durable = ServiceStore(svc.base, token, handoff_socket=socket_path)
        return TieredStore(LocalStore(str(tmp_path / folder)), durable)

    stored = store("hot-a").put("key-1", SCHEMA, batches())
    fetched = store("hot-b").get(stored.result_id)
    blob = blobs / f"{stored.result_id}.arrow"
    assert os.stat(fetched.path).st_ino == os.stat(blob).st_ino  # a link: no byte was copied
    assert pa.ipc.open_file(fetched.path).read_all().num_rows == 50_000

    # another user's token, a forged token: nothing is handed over
    assert store("hot-c", token=other_token).get(stored.result_id) is None
    assert store("hot-d", token="forged").get(stored.result_id) is None
    assert not list((tmp_path / "hot-c").glob("*.arrow"))
    assert not list((tmp_path / "hot-d").glob("*.arrow"))

    # a malformed request gets a 400 line and no descriptor
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(sock)
        s.sendall(b"not json\n")
        reply, fds, _, _ = socket.recv_fds(s, 4096, 1)
    assert json.loads(reply)["status"] == 400 and fds == []

    # without the socket (another machine) the same result arrives over HTTP
    copied = store("hot-e", socket_path=str(tmp_path / "absent.sock")).get(stored.result_id)
    assert os.stat(copied.path).st_ino != os.stat(blob).st_ino
    assert open(copied.path, "rb").read() == open(blob, "rb").read()


def test_query_cache_store_class_default_and_override(tmp_path, monkeypatch):
    from jupyterhub_civis.query_cache.app import QueryCache

    monkeypatch.delenv("CIVIS_SERVICE_URL", raising=False)
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    assert QueryCache(store_dir=str(tmp_path)).store_class is LocalStore
    monkeypatch.setenv("CIVIS_SERVICE_URL", "http://127.0.0.1:9/services/civis/")
    assert QueryCache(store_dir=str(tmp_path)).store_class is LocalStore  # no Hub token
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "server-token")
    app = QueryCache(store_dir=str(tmp_path / "hot"))
    assert app.store_class is TieredStore
    store = app.store_class.from_extension(app)
    assert store.hot.directory == str(tmp_path / "hot")
    assert (store.durable.base, store.durable.token) == (
        "http://127.0.0.1:9/services/civis/",
        "server-token",
    )
    assert store.durable.parent is app  # c.ServiceStore.<trait> reaches it

    from traitlets.config import Config

    c = Config()
    c.QueryCache.store_class = "jupyterhub_civis.query_cache.service_store.ServiceStore"
    c.ServiceStore.timeout = 7.5
    app = QueryCache(config=c)
    store = app.store_class.from_extension(app)
    assert isinstance(store, ServiceStore) and store.timeout == 7.5
