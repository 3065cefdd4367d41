"""What the service's machine exposes: private files and folders whatever the umask,
and a handoff socket that is private, bounded, and survives running out of file
descriptors — a real service process (SQLite + local blobs) behind a real hub."""

import json
import os
import resource
import socket
import stat

import pyarrow as pa
import pytest
from civis_service_support import arrow_stream, read_stream
from civis_test_support import wait_for

from jupyterhub_civis.query_cache.local_store import LocalStore
from jupyterhub_civis.query_cache.service_store import ServiceStore
from jupyterhub_civis.query_cache.tiered_store import TieredStore

pytestmark = pytest.mark.hub


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def local_service(replicas, tmp_path, *extra, umask=-1):
    data = tmp_path / "data"
    sock = str(tmp_path / "handoff.sock")
    svc = replicas(
        extra=[f"--CivisService.handoff_socket={sock}", *extra],
        db_url=f"sqlite:///{data}/meta.sqlite",
        blobs=str(data / "blobs"),
    )
    svc.start(umask=umask)
    return svc, data, sock


def test_data_folders_files_and_socket_are_private_whatever_the_umask(
    external_hub, replicas, tmp_path
):
    svc, data, sock = local_service(replicas, tmp_path, umask=0)
    token = external_hub.user_token(external_hub.create_user("modes"))
    rid = svc.client(token).put_ok(arrow_stream(100))["id"]
    assert mode(data) == 0o700
    assert mode(data / "blobs") == 0o700
    assert mode(data / "blobs" / f"{rid}.arrow") == 0o600
    for name in ("meta.sqlite", "meta.sqlite-wal", "meta.sqlite-shm"):
        assert mode(data / name) == 0o600, name
    assert stat.S_ISSOCK(os.stat(sock).st_mode) and mode(sock) == 0o600


def test_handoff_is_bounded_and_survives_running_out_of_descriptors(
    external_hub, replicas, tmp_path
):
    svc, data, sock = local_service(
        replicas,
        tmp_path,
        "--CivisService.handoff_max_connections=3",
        "--CivisService.handoff_idle_timeout=1",
    )
    token = external_hub.user_token(external_hub.create_user("handoff"))

    def tiered(folder):
        durable = ServiceStore(svc.base, token, handoff_socket=sock, timeout=30)
        return TieredStore(LocalStore(str(tmp_path / folder)), durable)

    batch = pa.record_batch({"n": pa.array(range(1000))})
    stored = tiered("hot-a").put("k", batch.schema, [batch])
    blob = data / "blobs" / f"{stored.result_id}.arrow"

    def connect():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(sock)
        return s

    # idle connections: at most 3 served at once, each closed with a 408 when idle
    idle = [connect() for _ in range(5)]
    wait_for(lambda: "handoff: 3 connections open" in svc.output(), timeout=30, message="cap")
    for s in idle:
        assert json.loads(s.recv(4096))["status"] == 408
        s.close()
    assert "sent no request in 1.0 s" in svc.output()

    # nested JSON is a bad request, not a crash
    with connect() as s:
        s.sendall(b"[" * 10_000 + b"\n")
        reply, fds, _, _ = socket.recv_fds(s, 4096, 1)
    assert json.loads(reply)["status"] == 400 and fds == []

    # no descriptor left in the service: it cannot accept, says so, and recovers
    pid = svc.proc.pid
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    in_use = len(os.listdir(f"/proc/{pid}/fd"))
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use, hard))
    try:
        waiting = [connect() for _ in range(3)]
        wait_for(
            lambda: "handoff: cannot accept connections" in svc.output(),
            timeout=30,
            message="the service to run out of descriptors",
        )
        for s in waiting:
            s.close()
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    fetched = tiered("hot-b").get(stored.result_id)
    assert os.stat(fetched.path).st_ino == os.stat(blob).st_ino  # handed over, not downloaded
    assert "handoff: accepting connections again" in svc.output()


def test_a_handoff_marks_its_result_recently_used_after_replying(external_hub, replicas, tmp_path):
    """The handoff replies before it records the read (the service's database commits
    durably): the result still counts as used for eviction."""
    import sqlite3

    svc, data, sock = local_service(replicas, tmp_path)
    token = external_hub.user_token(external_hub.create_user("handoff-touch"))
    durable = ServiceStore(svc.base, token, handoff_socket=sock, timeout=30)
    batch = pa.record_batch({"n": pa.array(range(1000))})
    rid = (
        TieredStore(LocalStore(str(tmp_path / "hot-a")), durable)
        .put("k", batch.schema, [batch])
        .result_id
    )

    def last_access_value():
        with sqlite3.connect(data / "meta.sqlite") as db:
            (value,) = db.execute(
                "select last_access from civis_results where id = ?", (rid,)
            ).fetchone()
        return value

    before = last_access_value()
    fetched = TieredStore(LocalStore(str(tmp_path / "hot-b")), durable).get(rid)
    assert fetched is not None, svc.output()[-3000:]
    blob = data / "blobs" / f"{rid}.arrow"
    assert os.stat(fetched.path).st_ino == os.stat(blob).st_ino  # handed over
    wait_for(lambda: last_access_value() > before, timeout=30, message="the read to be recorded")


def test_a_blob_uploaded_as_a_stream_is_handed_over_and_stored_as_a_file(
    external_hub, replicas, tmp_path
):
    """Servers upload Arrow IPC files; another client may upload a stream. The handoff
    hands over whichever the service holds; a stream is re-encoded as a file in the
    hot tier (a file is linked as it is)."""
    svc, data, sock = local_service(replicas, tmp_path)
    token = external_hub.user_token(external_hub.create_user("handoff-stream"))
    body = arrow_stream(1000)
    rid = svc.client(token).put_ok(body)["id"]
    assert (data / "blobs" / f"{rid}.arrow").read_bytes() == body  # kept as a stream
    # no HTTP to fall back on: only the handoff can bring it
    durable = ServiceStore("http://127.0.0.1:9/", token, handoff_socket=sock, timeout=30)
    fetched = TieredStore(LocalStore(str(tmp_path / "hot")), durable).get(rid)
    assert fetched is not None, svc.output()[-3000:]
    table = pa.ipc.open_file(pa.memory_map(fetched.path, "r")).read_all()
    assert table.equals(read_stream(body)) and fetched.rows == 1000
