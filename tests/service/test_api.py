"""The service API end to end: a real hub, the managed service, real user tokens."""

import json

import pytest
import requests
from civis_service_support import arrow_stream, read_stream

pytestmark = pytest.mark.hub


def test_put_get_list_pin_unpin_delete(service_hub):
    _, token = service_hub.new_user("alice")
    c = service_hub.client(token)
    body = arrow_stream(5000)

    def chunks():  # a chunked upload: the service never needs the whole body at once
        for i in range(0, len(body), 4096):
            yield body[i : i + 4096]

    info = c.put_ok(chunks(), key="k1", sql="select * from t", connection="wh", rows=5000)
    rid = info["id"]
    assert info["size"] == len(body) and info["rows"] == 5000 and info["pins"] == []
    assert "owner" not in info

    r = c.get(rid)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/vnd.apache.arrow.stream"
    assert read_stream(r.content).num_rows == 5000
    assert r.content == body

    listed = c.list()
    assert [x["id"] for x in listed] == [rid]
    assert listed[0]["sql"] == "select * from t" and listed[0]["connection"] == "wh"
    second = c.put_ok(key="k2")["id"]
    assert [x["id"] for x in c.list(key="k2")] == [second]
    assert [x["id"] for x in c.list(limit=1)] == [second]  # newest first

    assert c.pin(rid, "notebooks/a.ipynb").json()["pins"] == ["notebooks/a.ipynb"]
    assert c.pin(rid, "notebooks/b.ipynb").json()["pins"] == [
        "notebooks/a.ipynb",
        "notebooks/b.ipynb",
    ]
    r = c.delete(rid)
    assert r.status_code == 409 and "pinned" in r.json()["message"]
    c.unpin(rid, "notebooks/a.ipynb")
    assert c.unpin(rid, "notebooks/b.ipynb").json()["pins"] == []
    assert c.delete(rid).status_code == 204
    assert c.get(rid).status_code == 404
    assert [x["id"] for x in c.list()] == [second]


def test_incomplete_or_bad_uploads_leave_nothing(service_hub):
    _, token = service_hub.new_user("bad")
    c = service_hub.client(token)
    body = arrow_stream(100)
    r = c.put(body[:-8])  # no end-of-stream marker: a torn stream
    assert r.status_code == 400
    r = c.request("POST", "api/results", data=body, headers={"X-Civis-Result": "{not json"})
    assert r.status_code == 400
    assert c.list() == []


def test_upload_with_pins_records_them_with_the_result(service_hub):
    _, token = service_hub.new_user("pins")
    c = service_hub.client(token)
    meta = {"key": "k", "sql": "s", "connection": "c", "rows": 10}

    def upload(**extra):
        header = json.dumps({**meta, **extra})
        return c.request(
            "POST", "api/results", data=arrow_stream(10), headers={"X-Civis-Result": header}
        )

    r = upload(pins=["b.ipynb", "a.ipynb", "a.ipynb"])
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert r.json()["pins"] == ["a.ipynb", "b.ipynb"]
    assert c.delete(rid).status_code == 409  # pinned from the moment it exists
    for bad in ("a.ipynb", [""], ["x" * 2000], [1], ["n.ipynb"] * 65):
        r = upload(pins=bad)
        assert r.status_code == 400 and "pins" in r.json()["message"], (bad, r.text)
    assert [x["id"] for x in c.list()] == [rid]


def test_owner_comes_from_the_token_not_the_body(service_hub):
    alice, alice_token = service_hub.new_user("alice")
    _, bob_token = service_hub.new_user("bob")
    bob = service_hub.client(bob_token)
    meta = json.dumps({"key": "k", "sql": "s", "connection": "c", "rows": 1, "owner": alice})
    r = bob.request("POST", "api/results", data=arrow_stream(10), headers={"X-Civis-Result": meta})
    assert r.status_code == 400
    assert r.json()["message"] == "X-Civis-Result.owner: is not a recognised option"
    rid = bob.put_ok(arrow_stream(10))["id"]
    assert [x["id"] for x in bob.list()] == [rid]
    assert service_hub.client(alice_token).list() == []


def test_health_and_metrics(service_hub):
    _, token = service_hub.new_user("m")
    c = service_hub.client(token)
    rid = c.put_ok(arrow_stream(100))["id"]
    assert c.get(rid).status_code == 200
    assert c.get("0" * 32).status_code == 404
    assert requests.get(service_hub.base + "health", timeout=10).json() == {"status": "ok"}
    text = requests.get(service_hub.base + "metrics", timeout=10).text
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["civis_service_result_hits_total"] >= 1
    assert values["civis_service_result_misses_total"] >= 1
    assert values["civis_service_store_bytes"] >= len(arrow_stream(100))
    assert values["civis_service_store_results"] >= 1
    assert "civis_service_evictions_total" in values
    assert any(k.startswith("civis_service_requests_total{") for k in values)
    assert token not in text


def test_results_survive_hub_and_service_restart(hub_factory, tmp_path):
    import socket

    from civis_service_support import ServiceHub, service_config, wait_service
    from civis_test_support import free_port, wait_for

    port = free_port()
    run = hub_factory(service_config(port, [f"--data-dir={tmp_path / 'data'}"]))
    sh = ServiceHub(run.hub, port)
    wait_service(sh.base)
    _, token = sh.new_user("durable")
    body = arrow_stream(777)
    rid = sh.client(token).put_ok(body, key="dq")["id"]
    sh.client(token).pin(rid, "nb.ipynb")
    run.stop()

    def port_closed():
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) != 0

    wait_for(port_closed, timeout=30, message="the managed service to stop with the hub")
    sh = ServiceHub(run.start(), port)
    wait_service(sh.base)
    c = sh.client(token)
    assert c.get(rid).content == body
    assert c.list(key="dq")[0]["pins"] == ["nb.ipynb"]


def test_two_named_servers_of_one_user_share_results(service_hub):
    """From a kernel in server A a result is stored; a kernel in server B gets it —
    each with its own server's token and the environment the hub config gives."""
    from civis_test_support import run_code

    hub = service_hub.hub
    user, _ = service_hub.new_user("shared")
    _, other_token = service_hub.new_user("outsider")
    hub.start_and_wait(user, "a")
    hub.start_and_wait(user, "b")
    try:
        out = run_code(
            hub,
            user,
            "a",
            "import pyarrow as pa\n"
            "from jupyterhub_civis.query_cache.service_store import ServiceStore\n"
            "b = pa.record_batch({'n': pa.array(range(1234))})\n"
            "r = ServiceStore().put('shared-key', b.schema, [b], sql='select n from t')\n"
            "print('ID', r.result_id)\n",
        )
        rid = out.split("ID ")[1].split()[0]
        out = run_code(
            hub,
            user,
            "b",
            "from jupyterhub_civis.query_cache.service_store import ServiceStore\n"
            "s = ServiceStore()\n"
            "r = s.latest('shared-key')\n"
            "print('GOT', r.result_id, s.open_reader(r).read_all().num_rows)\n",
        )
        assert f"GOT {rid} 1234" in out
        assert service_hub.client(other_token).get(rid).status_code == 404
    finally:
        hub.stop(user, "a")
        hub.stop(user, "b")


def test_client_that_disconnects_mid_upload_leaves_nothing(service_hub):
    import json
    import socket

    from civis_test_support import wait_for

    user, token = service_hub.new_user("drop")
    body = arrow_stream(50_000)
    meta = json.dumps({"key": "dropped", "sql": "", "connection": "", "rows": 50_000})
    with socket.create_connection(("127.0.0.1", service_hub.service_port)) as s:
        s.sendall(
            (
                "POST /services/civis/api/results HTTP/1.1\r\n"
                f"Host: 127.0.0.1\r\nAuthorization: token {token}\r\n"
                f"X-Civis-Result: {meta}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body[: len(body) // 2]
        )

        def in_progress():
            text = requests.get(service_hub.base + "metrics", timeout=10).text
            return [
                line for line in text.splitlines() if line.startswith("civis_service_uploads_in")
            ]

        wait_for(lambda: in_progress() != ["civis_service_uploads_in_progress 0.0"], timeout=30)
    # connection closed mid-body: the upload is aborted at once, blob and row removed
    wait_for(
        lambda: in_progress() == ["civis_service_uploads_in_progress 0.0"],
        timeout=30,
        message="aborted upload cleaned",
    )
    blobs = service_hub.data_dir / "blobs"
    committed = {x["id"] for x in service_hub.client(token).list()}
    assert committed == set()
    wait_for(
        lambda: (
            not any(
                p.name.endswith(".arrow") and p.name[:-6] not in all_ids(service_hub)
                for p in blobs.iterdir()
            )
        ),
        timeout=30,
        message="no orphan blob",
    )


def all_ids(service_hub):
    import sqlite3

    db = sqlite3.connect(service_hub.data_dir / "civis-service.sqlite")
    try:
        return {r[0] for r in db.execute("select id from civis_results")}
    finally:
        db.close()
