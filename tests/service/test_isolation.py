"""Isolation probes: every way of reaching another user's result is answered
exactly like a missing result (or refused outright), and nothing leaks."""

import uuid

import pytest
import requests
from civis_service_support import arrow_stream
from civis_test_support import TEST_TOKEN, run_code, wait_for

pytestmark = pytest.mark.hub

SECRET_SQL = "select ssn from secret_table_" + uuid.uuid4().hex[:6]
NOT_FOUND = {"status": 404, "message": "result not found"}


def server_token(hub, user: str, server: str) -> str:
    """The real $JUPYTERHUB_API_TOKEN of a running named server, as its kernels see it.

    (Not from /proc/<pid>/environ: a preloaded server is forked from a warm
    process and gets its environment after the fork.)"""
    code = "import os; print(os.environ['JUPYTERHUB_API_TOKEN'])"
    return run_code(hub, user, server, code).strip()


@pytest.fixture(scope="module")
def world(service_hub):
    alice, alice_token = service_hub.new_user("alice")
    bob, bob_token = service_hub.new_user("bob")
    a = service_hub.client(alice_token)
    info = a.put_ok(arrow_stream(50), key="kk", sql=SECRET_SQL, connection="prod")
    a.pin(info["id"], "alice/report.ipynb")
    return {
        "alice": alice,
        "alice_token": alice_token,
        "bob": bob,
        "bob_token": bob_token,
        "rid": info["id"],
        "a": a,
    }


def assert_not_found(r, world):
    assert r.status_code == 404, (r.status_code, r.text)
    assert r.json() == NOT_FOUND
    blob = r.text + repr(dict(r.headers))
    for secret in (world["alice"], SECRET_SQL, "prod", "report.ipynb", world["alice_token"]):
        assert secret not in blob


def assert_refused(r, world):
    assert r.status_code == 403, (r.status_code, r.text)
    blob = r.text + repr(dict(r.headers))
    for secret in (world["alice"], SECRET_SQL, "prod", world["alice_token"]):
        assert secret not in blob


def test_other_users_api_token_sees_nothing(service_hub, world):
    bob = service_hub.client(world["bob_token"])
    rid = world["rid"]
    missing = uuid.uuid4().hex
    # 1-2. read data / metadata: exactly like a missing id
    for path in (rid, missing, f"{rid}/info", f"{missing}/info"):
        assert_not_found(bob.request("GET", f"api/results/{path}"), world)
    # 3-5. pin, unpin, delete
    assert_not_found(bob.pin(rid, "bob/steal.ipynb"), world)
    assert_not_found(bob.unpin(rid, "alice/report.ipynb"), world)
    assert_not_found(bob.delete(rid), world)
    # 6. list
    assert bob.list() == [] and bob.list(key="kk") == []
    # alice's result is untouched by all of it
    info = world["a"].request("GET", f"api/results/{rid}/info").json()
    assert info["pins"] == ["alice/report.ipynb"]


def test_id_guessing_and_path_tricks(service_hub, world):
    bob = service_hub.client(world["bob_token"])
    rid = world["rid"]
    # 7. ids that are not ids, and path tricks around alice's real id
    tricks = [
        rid.upper(),
        rid + ".arrow",
        rid[:-1],
        "0" * 32,
        f"..%2F{rid}",
        f"%2e%2e%2f%2e%2e%2f{rid}",
        f"{rid}%00",
        f"{rid}%2F..%2F{rid}",
        "..%2F..%2Fcivis-service.sqlite",
    ]
    for t in tricks:
        r = bob.request("GET", f"api/results/{t}")
        assert r.status_code == 404, (t, r.status_code)
        assert r.json()["message"] in ("result not found", "not found"), t
        assert SECRET_SQL not in r.text and world["alice"] not in r.text
    # raw path traversal is normalised by the client or refused by the service
    r = bob.request("GET", f"api/results/x/../../results/{rid}")
    assert r.status_code in (403, 404) and SECRET_SQL not in r.text


def test_missing_malformed_expired_tokens(service_hub, world):
    c = service_hub.client(None)
    rid = world["rid"]
    # 8. no token at all
    assert_refused(c.get(rid), world)
    assert_refused(c.request("GET", "api/results"), world)
    # 9. malformed tokens
    for bad in ("", "x", "token", "not-a-real-token-" + uuid.uuid4().hex, "a" * 5000):
        r = c.get(rid, headers={"Authorization": f"token {bad}"})
        assert r.status_code in (400, 403, 431), (bad[:20], r.status_code)
        assert SECRET_SQL not in r.text
    # 10. an expired token of alice herself
    hub = service_hub.hub
    r = hub.api("POST", f"/users/{world['alice']}/tokens", json={"note": "short", "expires_in": 1})
    expired = r.json()["token"]
    wait_for(
        lambda: hub.api("GET", "/user", token=expired).status_code == 403,
        timeout=30,
        message="token expiry",
    )
    assert_refused(c.get(rid, token=expired), world)
    # 11. a token only in the URL is not accepted
    r = c.request("GET", f"api/results/{rid}", params={"token": world["alice_token"]})
    assert r.status_code == 403 and SECRET_SQL not in r.text


def test_tokens_without_user_identity_or_scope(service_hub, world):
    rid = world["rid"]
    # 12. a service token (even one with hub admin scopes) owns no results
    assert_refused(service_hub.client(TEST_TOKEN).get(rid), world)
    # 13. alice's own token restricted to scopes that exclude the service
    r = service_hub.hub.api(
        "POST",
        f"/users/{world['alice']}/tokens",
        json={"scopes": ["read:users:name!user"], "expires_in": 600},
    )
    narrow = r.json()["token"]
    assert_refused(service_hub.client(narrow).get(rid), world)
    # 14. a hub admin is not a result admin: admin access is not a default
    admin_token = service_hub.hub.user_token("civis-admin")
    assert_not_found(service_hub.client(admin_token).get(rid), world)


def test_server_token_of_another_user(service_hub, world):
    hub = service_hub.hub
    hub.start_and_wait(world["bob"], "s1")
    try:
        token = server_token(hub, world["bob"], "s1")
        srv = service_hub.client(token)
        # the server token reaches the service (its own user's results) ...
        own = srv.put_ok(arrow_stream(5), key="bob-k")["id"]
        assert [x["id"] for x in srv.list()] == [own]
        # 15. ... but never alice's
        assert_not_found(srv.get(world["rid"]), world)
        assert_not_found(srv.pin(world["rid"], "x.ipynb"), world)
        assert_not_found(srv.delete(world["rid"]), world)
        # and it is answered the same through the service port directly (no proxy)
        direct = requests.get(
            f"http://127.0.0.1:{service_hub.service_port}/services/civis/api/results/{world['rid']}",
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        assert_not_found(direct, world)
    finally:
        hub.stop(world["bob"], "s1")


def test_admin_access_is_an_explicit_scope(service_hub, world):
    rid, alice = world["rid"], world["alice"]
    bob = service_hub.client(world["bob_token"])
    # 16. asking to list another user's results without the scope
    r = bob.request("GET", "api/results", params={"user": alice})
    assert_refused(r, world)
    # 17. a user cannot mint a token with the admin scope they were not given
    r = service_hub.hub.api(
        "POST", f"/users/{world['bob']}/tokens", json={"scopes": ["custom:civis:admin"]}
    )
    assert r.status_code in (400, 403), r.text
    # the auditor, who holds custom:civis:admin through an explicit role, may
    auditor = service_hub.client(service_hub.hub.user_token("civis-auditor"))
    assert auditor.get(rid).status_code == 200
    assert [x["id"] for x in auditor.list(user=alice)] == [rid]
    assert auditor.request("GET", f"api/results/{rid}/info").json()["pins"] == [
        "alice/report.ipynb"
    ]
