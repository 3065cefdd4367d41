"""Per-user quotas through a real hub: an upload that does not fit evicts the user's
own least recently used results, never another user's; pinned results that leave no
room get a 413 that says what to do; Hub groups raise (or lower) the budget."""

import json
import socket

import pytest
from civis_service_support import ServiceHub, arrow_stream, service_config, wait_service
from civis_test_support import free_port

pytestmark = pytest.mark.hub

BODY = arrow_stream(20_000)
SIZE = len(BODY)


@pytest.fixture
def quota_hub(hub_factory, tmp_path):
    port = free_port()
    args = [
        f"--data-dir={tmp_path / 'data'}",
        f"--CivisService.max_user_bytes={3 * SIZE + SIZE // 2}",
        f"--CivisService.group_max_user_bytes=heavy={10 * SIZE}",
    ]
    sh = ServiceHub(hub_factory(service_config(port, args)).hub, port)
    sh.data_dir = tmp_path / "data"
    wait_service(sh.base)
    return sh


def ids(client):
    return [x["id"] for x in client.list()]


def raw_upload_headers(sh, token, length) -> bytes:
    """Send only an upload's headers, asking to go on (``Expect: 100-continue``) as a
    client holding a large body does; return the service's answer."""
    meta = json.dumps({"key": "k", "rows": 1})
    with socket.create_connection(("127.0.0.1", sh.service_port), timeout=30) as s:
        s.sendall(
            (
                f"POST /services/civis/api/results HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: token {token}\r\nX-Civis-Result: {meta}\r\n"
                f"Content-Length: {length}\r\nExpect: 100-continue\r\n\r\n"
            ).encode()
        )
        return s.recv(65536)


def test_a_full_quota_evicts_the_users_own_results_then_refuses(quota_hub):
    _, alice_token = quota_hub.new_user("alice")
    _, bob_token = quota_hub.new_user("bob")
    alice, bob = quota_hub.client(alice_token), quota_hub.client(bob_token)
    r1, r2, r3 = (alice.put_ok(BODY)["id"] for _ in range(3))
    b1 = bob.put_ok(BODY)["id"]

    r4 = alice.put_ok(BODY)["id"]  # no room for a fourth: alice's oldest goes
    assert sorted(ids(alice)) == sorted([r2, r3, r4]) and alice.get(r1).status_code == 404
    assert ids(bob) == [b1]  # bob's result is never touched by alice's uploads

    for rid in (r2, r3, r4):
        assert alice.pin(rid, f"{rid}.ipynb").status_code == 200
    r = alice.put(BODY)
    assert r.status_code == 413
    message = r.json()["message"]
    assert "of your quota of" in message and "pinned by notebooks" in message
    assert "My queries" in message
    assert sorted(ids(alice)) == sorted([r2, r3, r4])

    # unpinning makes room again
    alice.unpin(r2, f"{r2}.ipynb")
    r5 = alice.put_ok(BODY)["id"]
    assert sorted(ids(alice)) == sorted([r3, r4, r5])


def test_too_large_for_the_quota_is_refused_before_the_body(quota_hub):
    _, token = quota_hub.new_user("big")
    answer = raw_upload_headers(quota_hub, token, 4 * SIZE)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"larger than your quota" in answer

    def chunks():  # no Content-Length: refused once the body outgrows the quota
        for _ in range(4):
            yield BODY

    c = quota_hub.client(token)
    r = c.put(chunks())
    assert r.status_code == 413 and "larger than your quota" in r.json()["message"]
    assert c.list() == []
    c.put_ok(BODY)  # the connection's refusal left the user able to upload


def test_a_hub_group_raises_the_budget(quota_hub):
    hub = quota_hub.hub
    user, token = quota_hub.new_user("heavy")
    assert hub.api("POST", "/groups/heavy").status_code in (201, 409)
    assert hub.api("POST", "/groups/heavy/users", json={"users": [user]}).status_code == 200
    token = hub.user_token(user)  # the group is part of what the hub says about the token
    c = quota_hub.client(token)
    stored = [c.put_ok(BODY)["id"] for _ in range(6)]
    assert sorted(ids(c)) == sorted(stored)
