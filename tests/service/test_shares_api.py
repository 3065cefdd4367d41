"""The sharing REST API through a real hub: create, list, versions, audience, expiry,
revoke, audit, results through a share — and the one 404 for every refusal."""

import json
import time
import uuid

import pytest
from civis_service_support import arrow_stream, read_stream

pytestmark = pytest.mark.hub


def notebook(results=(), text="hello", env=None) -> str:
    meta = {
        "jupyterhub_civis": {
            "environment": env or {"environment": "default", "packages": []},
            "queries": {f"k{i}": {"result_id": r, "sql": "select 1"} for i, r in enumerate(results)},
        }
    }
    cells = [{"cell_type": "markdown", "id": "m", "metadata": {}, "source": text}]
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": meta, "cells": cells})


def share(client, nb=None, **body):
    body.setdefault("audience", {"everyone": True})
    return client.request("POST", "api/shares", json={"notebook": nb or notebook(), **body})


def test_share_open_version_revoke(service_hub):
    owner, owner_token = service_hub.new_user("owner")
    viewer, viewer_token = service_hub.new_user("viewer")
    _, stranger_token = service_hub.new_user("stranger")
    o, v, x = (service_hub.client(t) for t in (owner_token, viewer_token, stranger_token))
    body = arrow_stream(50, seed=7)
    rid = o.put_ok(body)["id"]
    other = o.put_ok()["id"]

    nb = notebook([rid], env={"environment": "py311", "packages": ["duckdb"]})
    r = share(o, nb, title="Q3 <b>", path="work/q3.ipynb", audience={"users": [viewer]})
    assert r.status_code == 201, r.text
    created = r.json()
    sid = created["id"]
    assert len(sid) == 32 and created["url"] == f"/services/civis/s/{sid}"
    assert created["audience"] == {"users": [viewer], "groups": [], "everyone": False}
    assert created["versions"][0]["results"] == [rid]
    assert created["versions"][0]["environment"]["environment"] == "py311"

    # the viewer sees it, without its audience; the stranger gets the one 404
    seen = v.request("GET", f"api/shares/{sid}").json()
    assert seen["title"] == "Q3 <b>" and "audience" not in seen
    assert [s["id"] for s in v.request("GET", "api/shares/shared-with-me").json()["shares"]] == [sid]
    nf = x.request("GET", f"api/shares/{sid}")
    assert nf.status_code == 404 and nf.json()["message"] == "share not found"
    assert x.request("GET", f"api/shares/{sid[:-1]}A").json() == nf.json()
    assert x.request("GET", f"api/shares/{uuid.uuid4().hex}").json() == nf.json()

    # the notebook bytes as saved, and the share's result for its audience only
    got = v.request("GET", f"api/shares/{sid}/versions/1/notebook")
    assert got.status_code == 200 and got.content == nb.encode()
    res = v.request("GET", f"api/shares/{sid}/results/{rid}")
    assert res.status_code == 200 and read_stream(res.content).equals(read_stream(body))
    # the results read path accepts the share's grant too (what a copy's query cache uses)
    res = v.get(rid)
    assert res.status_code == 200 and res.content == body
    for client, path in (
        (v, f"api/shares/{sid}/results/{other}"),  # not carried by the share
        (v, f"api/results/{other}"),
        (x, f"api/shares/{sid}/results/{rid}"),  # not in the audience
        (x, f"api/results/{rid}"),
    ):
        assert client.request("GET", path).status_code == 404

    # reads only: the viewer can neither pin nor delete it
    assert v.pin(rid, "mine.ipynb").status_code == 404
    assert v.delete(rid).status_code == 404
    # the owner cannot lose a carried result from under the link
    assert o.delete(rid).status_code == 409
    unpin = o.unpin(rid, f"share:{sid}")
    assert unpin.status_code == 409 and "revoke the share" in unpin.json()["message"]

    # sharing again: a new version; v1 stays
    r = o.request("POST", f"api/shares/{sid}/versions", json={"notebook": notebook([], "two")})
    assert r.status_code == 201 and [x["number"] for x in r.json()["versions"]] == [1, 2]
    assert v.request("GET", f"api/shares/{sid}/versions/1/notebook").content == nb.encode()
    assert v.request("POST", f"api/shares/{sid}/versions", json={"notebook": nb}).status_code == 404

    # views are audited for the owner only
    v.request("GET", f"api/shares/{sid}")
    assert v.request("GET", f"api/shares/{sid}/events").status_code == 404
    assert o.request("GET", f"api/shares/{sid}/events").status_code == 200

    # revoke: the one 404 for the viewer, the owner still lists it as revoked
    assert v.request("DELETE", f"api/shares/{sid}").status_code == 404
    assert o.request("DELETE", f"api/shares/{sid}").status_code == 204
    assert v.request("GET", f"api/shares/{sid}").json() == nf.json()
    assert v.request("GET", f"api/shares/{sid}/results/{rid}").status_code == 404
    assert v.get(rid).status_code == 404
    mine = o.request("GET", "api/shares").json()["shares"]
    assert [(s["id"], s["revoked"] is not None) for s in mine] == [(sid, True)]
    assert o.delete(rid).status_code == 204  # released by the revoke


def test_groups_expiry_and_patch(service_hub):
    hub = service_hub.hub
    owner, owner_token = service_hub.new_user("gowner")
    member, member_token = service_hub.new_user("member")
    group = f"team-{uuid.uuid4().hex[:6]}"
    assert hub.api("POST", f"/groups/{group}", json={"users": [member]}).status_code == 201
    o, m = service_hub.client(owner_token), service_hub.client(member_token)
    sid = share(o, audience={"groups": [group]}).json()["id"]
    assert m.request("GET", f"api/shares/{sid}").status_code == 200
    # removed from the group: no access at once, with the very credential the service
    # has just identified (and cached); added back: access at once
    hub.api("DELETE", f"/groups/{group}/users", json={"users": [member]})
    assert m.request("GET", f"api/shares/{sid}").status_code == 404
    hub.api("POST", f"/groups/{group}/users", json={"users": [member]})
    assert m.request("GET", f"api/shares/{sid}").status_code == 200
    hub.api("DELETE", f"/groups/{group}/users", json={"users": [member]})
    assert m.request("GET", f"api/shares/{sid}").status_code == 404

    # expiry in the past is refused; a near one ends access when it passes
    r = o.request("PATCH", f"api/shares/{sid}", json={"expires": time.time() - 5})
    assert r.status_code == 400 and r.json()["message"].startswith("expires:")
    r = o.request(
        "PATCH", f"api/shares/{sid}", json={"audience": {"everyone": True}, "expires": time.time() + 1.5}
    )
    assert r.status_code == 200 and r.json()["audience"]["everyone"] is True
    assert m.request("GET", f"api/shares/{sid}").status_code == 200
    deadline = r.json()["expires"]
    while time.time() < deadline:
        time.sleep(deadline - time.time())
    assert m.request("GET", f"api/shares/{sid}").status_code == 404
    r = o.request("PATCH", f"api/shares/{sid}", json={"expires": None})
    assert r.status_code == 200 and r.json()["expires"] is None
    assert m.request("GET", f"api/shares/{sid}").status_code == 200


@pytest.mark.parametrize(
    "body,field",
    [
        ({"notebook": "{}", "audience": {"everyone": True}}, "notebook"),
        ({"notebook": "not json", "audience": {"everyone": True}}, "notebook"),
        ({"notebook": "NB", "audience": {}}, "body.audience"),
        ({"notebook": "NB", "audience": {"users": ["a/b"]}}, "body.audience.users[0]"),
        ({"notebook": "NB", "audience": {"everyone": True}, "colour": 1}, "body.colour"),
        ({"notebook": "NB", "audience": {"everyone": True}, "kind": "public"}, "body.kind"),
        ({"notebook": "NB", "audience": {"everyone": True}, "expires": 1.0}, "expires"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(service_hub, body, field):
    _, token = service_hub.new_user("bad")
    c = service_hub.client(token)
    if body.get("notebook") == "NB":
        body["notebook"] = notebook()
    r = c.request("POST", "api/shares", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith(field), r.json()
    assert c.request("GET", "api/shares").json()["shares"] == []
    assert c.request("POST", "api/shares", data=b"[" * 10000).status_code == 400


def test_anonymous_and_cookie_without_xsrf_are_refused(service_hub):
    from civis_test_support import login

    user, token = service_hub.new_user("anon")
    assert share(service_hub.client(None)).status_code == 403
    session = login(service_hub.hub, user)
    session.get(service_hub.base + "shares/mine", timeout=30)  # OAuth; sets the cookie
    r = session.post(
        service_hub.base + "api/shares",
        json={"notebook": notebook(), "audience": {"everyone": True}},
        timeout=30,
    )
    assert r.status_code == 403
    assert service_hub.client(token).request("GET", "api/shares").json()["shares"] == []
