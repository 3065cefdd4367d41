"""Bad input is a 4xx with a message, never a 500, and leaves nothing behind — through a
real hub and service (SQLite), and a replica on PostgreSQL for what the database sees."""

import json
import socket
import uuid

import pytest
from civis_service_support import arrow_stream

pytestmark = pytest.mark.hub


def upload(client, header: str, body=None):
    return client.request(
        "POST", "api/results", data=body or arrow_stream(10), headers={"X-Civis-Result": header}
    )


def test_bad_upload_headers_and_pin_bodies(service_hub):
    _, token = service_hub.new_user("bad")
    c = service_hub.client(token)
    cases = {
        json.dumps({"rows": 1e30}): "X-Civis-Result.rows",
        json.dumps({"rows": 10**30}): "X-Civis-Result.rows",
        json.dumps({"key": "k" * 500}): "X-Civis-Result.key",
        "[" * 8_000: "X-Civis-Result: is not valid JSON",  # under the proxy's header limit
        json.dumps({"pins": ["x" * 1025]}): "X-Civis-Result.pins[0]",
    }
    for header, field in cases.items():
        r = upload(c, header)
        assert r.status_code == 400, (header[:40], r.status_code, r.text)
        assert r.json()["message"].startswith(field), r.text
    assert c.list() == []

    rid = c.put_ok()["id"]
    for body in (b"[" * 100_000, b'{"ref": "' + b"x" * 1025 + b'"}', b'{"ref": ""}', b"{}"):
        r = c.request("PUT", f"api/results/{rid}/pins", data=body)
        assert r.status_code == 400, (body[:30], r.status_code, r.text)
    r = c.request("DELETE", f"api/results/{rid}/pins", params={"ref": "x" * 1025})
    assert r.status_code == 400 and r.json()["message"].startswith("ref:")
    assert c.request("GET", f"api/results/{rid}/info").json()["pins"] == []


def test_bad_list_arguments(service_hub):
    _, token = service_hub.new_user("limits")
    c = service_hub.client(token)
    c.put_ok()
    for limit in ("99999999999999999999", "-1", "0", "ten", "1e3"):
        r = c.request("GET", "api/results", params={"limit": limit})
        assert r.status_code == 400 and r.json()["message"].startswith("limit:"), (limit, r.text)
    assert len(c.list(limit=1)) == 1


def test_list_arguments_on_postgresql(external_hub, replicas):
    svc = replicas().start()
    c = svc.client(external_hub.user_token(external_hub.create_user("pg-limits")))
    c.put_ok()
    for limit in ("-1", "99999999999999999999"):
        r = c.request("GET", "api/results", params={"limit": limit})
        assert r.status_code == 400 and r.json()["message"].startswith("limit:"), (limit, r.text)
    assert len(c.list(limit=1)) == 1


def test_get_on_the_delete_form_route(service_hub):
    _, token = service_hub.new_user("getdelete")
    c = service_hub.client(token)
    rid = c.put_ok()["id"]
    for target in (rid, uuid.uuid4().hex, "not-an-id"):
        r = c.request("GET", f"results/{target}/delete")
        assert r.status_code == 405, (target, r.status_code)
    assert c.get(rid).status_code == 200


def test_a_declared_body_beyond_the_limit_is_413_before_it_is_sent(service_hub):
    _, token = service_hub.new_user("huge")
    meta = json.dumps({"key": "k", "rows": 1})
    with socket.create_connection(("127.0.0.1", service_hub.service_port), timeout=30) as s:
        s.sendall(
            (
                "POST /services/civis/api/results HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: token {token}\r\nX-Civis-Result: {meta}\r\n"
                f"Content-Length: {9 << 30}\r\n\r\n"
            ).encode()
        )
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"max_result_bytes" in answer


def test_a_foreign_body_is_refused_after_its_first_bytes(service_hub):
    _, token = service_hub.new_user("foreign")
    meta = json.dumps({"key": "k", "rows": 1})
    declared = 100 << 20
    with socket.create_connection(("127.0.0.1", service_hub.service_port), timeout=30) as s:
        s.sendall(
            (
                "POST /services/civis/api/results HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: token {token}\r\nX-Civis-Result: {meta}\r\n"
                f"Content-Length: {declared}\r\n\r\n"
            ).encode()
            + b"PAR1"
            + b"\0" * (64 << 10)
        )
        answer = s.recv(65536)  # the answer comes with 99.9 % of the body unsent
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"not an Arrow IPC stream or file" in answer
    assert service_hub.client(token).list() == []


def test_a_result_holds_at_most_256_pins(service_hub):
    from jupyterhub_civis.service.policy import MAX_PINS_PER_RESULT

    _, token = service_hub.new_user("pins")
    c = service_hub.client(token)
    rid = c.put_ok()["id"]
    for i in range(MAX_PINS_PER_RESULT):
        assert c.pin(rid, f"nb{i}.ipynb").status_code == 200
    assert c.pin(rid, "nb0.ipynb").status_code == 200  # pinned again: no new pin
    r = c.pin(rid, "one-too-many.ipynb")
    assert r.status_code == 409 and "unpin" in r.json()["message"]
    assert len(c.request("GET", f"api/results/{rid}/info").json()["pins"]) == 256
