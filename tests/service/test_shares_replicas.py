"""Sharing with two service replicas on one PostgreSQL + s3:// (moto): shared on one,
viewed, rendered, copied (the version's bytes and its results through the share) and
revoked on the other."""

import json

import pytest
from civis_service_support import arrow_stream, read_stream
from civis_test_support import wait_for

pytestmark = pytest.mark.hub


def test_share_on_one_replica_open_and_copy_on_the_other(external_hub, replicas):
    a_proc, b_proc = replicas().start(), replicas().start()
    owner = external_hub.create_user("rowner")
    viewer = external_hub.create_user("rviewer")
    owner_token, viewer_token = (external_hub.user_token(u) for u in (owner, viewer))
    a = a_proc.client(owner_token)
    b = b_proc.client(viewer_token)

    body = arrow_stream(500, seed=3)
    rid = a.put_ok(body)["id"]
    nb = json.dumps({
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"jupyterhub_civis": {"environment": {"name": "python"},
                                          "queries": {"k": {"result_id": rid}}}},
        "cells": [{"cell_type": "markdown", "id": "m", "metadata": {}, "source": "# On A"}],
    })
    r = a.request("POST", "api/shares", json={"notebook": nb, "audience": {"users": [viewer]}})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]

    # on B: the share, its viewer page, its rendering, the bytes and the carried result
    assert b.request("GET", f"api/shares/{sid}").json()["versions"][0]["results"] == [rid]
    page = b.request("GET", f"s/{sid}")
    assert page.status_code == 200 and "frame-ancestors 'none'" in page.headers[
        "Content-Security-Policy"]
    rendered = b.request("GET", f"s/{sid}/render?v=1")
    assert rendered.status_code == 200 and "On A" in rendered.text
    # sandboxed: scripts off, its own origin only so its image requests carry the cookie
    assert rendered.headers["Content-Security-Policy"].startswith("sandbox allow-same-origin;")
    assert b.request("GET", f"api/shares/{sid}/versions/1/notebook").content == nb.encode()
    got = b.request("GET", f"api/results/{rid}")
    assert got.status_code == 200 and read_stream(got.content).equals(read_stream(body))

    # the view recorded on B reaches A's audit once B's audit writer commits it (B
    # answers the view first); A's rendering cache serves the same bytes
    def audited_on_a():
        events = a.request("GET", f"api/shares/{sid}/events").json()["events"]
        return [e["user"] for e in events] == [viewer]

    wait_for(audited_on_a, timeout=30, message="B's view in A's audit")
    assert a_proc.client(viewer_token).request("GET", f"s/{sid}/render?v=1").text == rendered.text

    # revoked on B (by its owner): A answers the one 404 at once, results included
    assert b_proc.client(owner_token).request("DELETE", f"api/shares/{sid}").status_code == 204
    va = a_proc.client(viewer_token)
    for path in (f"api/shares/{sid}", f"s/{sid}/render?v=1", f"api/results/{rid}"):
        assert va.request("GET", path).status_code == 404, path
