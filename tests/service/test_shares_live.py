"""Live shares through a real hub: a JupyterHub share code (the hub's own ``share-codes``
API, JupyterHub >= 5) for a running server, listed with the other shares; another user
accepts it and reaches the server; revoking removes the code and what it granted."""

import re

import pytest
import requests
from civis_test_support import login

pytestmark = pytest.mark.hub


def test_live_share_create_accept_list_revoke(hub):
    owner, viewer = hub.create_user("live"), hub.create_user("pair")
    hub.start_and_wait(owner, "pair")
    owner_token = hub.user_token(owner)
    svc = requests.Session()
    svc.headers["Authorization"] = f"token {owner_token}"
    base = f"{hub.url}/services/civis/"

    # bad input: the server must be running and the owner's
    r = svc.post(base + "api/shares/live", json={"server": "nope"}, timeout=60)
    assert r.status_code == 404 and r.json()["message"].startswith("server:")
    r = svc.post(base + "api/shares/live", json={"server": "pair", "expires_in": 5}, timeout=60)
    assert r.status_code == 400 and r.json()["message"].startswith("body.expires_in")

    r = svc.post(base + "api/shares/live", json={"server": "pair", "title": "pairing",
                                                 "expires_in": 3600}, timeout=60)
    assert r.status_code == 201, r.text
    live = r.json()
    assert live["kind"] == "live" and live["server"] == "pair"
    assert "/hub/accept-share?code=" in live["accept_url"]
    assert live["expires"] is not None
    listed = svc.get(base + "api/shares", timeout=60).json()["shares"]
    assert [(s["id"], s["kind"]) for s in listed] == [(live["id"], "live")]
    hub_api = requests.Session()
    hub_api.headers["Authorization"] = f"token {owner_token}"
    codes = hub_api.get(f"{hub.url}/hub/api/share-codes/{owner}/pair", timeout=60).json()
    assert len(codes["items"]) == 1 and codes["items"][0]["exchange_count"] == 0

    # another user accepts it on the hub's own page and reaches the owner's server
    session = login(hub, viewer)
    accept = live["accept_url"]
    accept = accept if accept.startswith("http") else hub.url + accept
    page = session.get(accept, timeout=60)
    assert page.status_code == 200
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    code = re.search(r"code=([^&]+)", accept).group(1)
    r = session.post(f"{hub.url}/hub/accept-share", data={"_xsrf": xsrf, "code": code},
                     timeout=60)
    # on its way to the owner's server (whose OAuth asks the viewer to confirm)
    assert r.status_code == 200
    assert f"/user/{owner}/pair/" in r.url or f"client_id=jupyterhub-user-{owner}-pair" in r.url
    shares = hub_api.get(f"{hub.url}/hub/api/shares/{owner}/pair", timeout=60).json()["items"]
    assert [s["user"]["name"] for s in shares] == [viewer]

    # revoke through the service: the code and the share it granted are gone
    assert svc.delete(base + f"api/shares/{live['id']}", timeout=60).status_code == 204
    assert hub_api.get(f"{hub.url}/hub/api/share-codes/{owner}/pair", timeout=60).json()["items"] == []
    assert hub_api.get(f"{hub.url}/hub/api/shares/{owner}/pair", timeout=60).json()["items"] == []
    got = svc.get(base + f"api/shares/{live['id']}", timeout=60).json()
    assert got["revoked"] is not None
