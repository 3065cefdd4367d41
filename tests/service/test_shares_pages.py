""""Shared by me" and "Shared with me" in Chromium through a real hub: reached from the
hub's Services menu; change audience and expiry, see who viewed, revoke (asks first)."""

import json
import re

import pytest
from civis_service_support import logged_in_page
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.hub]


def nb(text="x"):
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                       "cells": [{"cell_type": "markdown", "id": "a", "metadata": {}, "source": text}]})


def test_manage_shares_in_chromium(service_hub, browser, tmp_path):
    owner, owner_token = service_hub.new_user("mowner")
    viewer, _ = service_hub.new_user("mviewer")
    later, _ = service_hub.new_user("mlater")
    o = service_hub.client(owner_token)
    sid = o.request("POST", "api/shares", json={"notebook": nb(), "title": "Quarterly <i>",
                                                "audience": {"users": [viewer]}}).json()["id"]
    hub = service_hub.hub

    # the viewer finds it under "Shared with me", from the hub's own Services menu
    vpage = logged_in_page(browser, hub, viewer)
    vpage.goto(f"{hub.url}/hub/home")
    vpage.locator("a.dropdown-toggle", has_text="Services").click()
    vpage.locator(".dropdown-menu a.dropdown-item", has_text="Shared with me").click()
    vpage.wait_for_url(re.compile(r".*/services/civis/shares/with-me$"))
    row = vpage.locator(f"#shared-with-me tr[data-share-id='{sid}']")
    expect(row).to_contain_text("Quarterly <i>")
    expect(row).to_contain_text(owner)
    row.locator("a").click()
    expect(vpage.locator("#share-title")).to_have_text("Quarterly <i>")

    # the owner manages it under "Shared by me"
    page = logged_in_page(browser, hub, owner)
    page.goto(f"{hub.url}/hub/home")
    page.locator("a.dropdown-toggle", has_text="Services").click()
    expect(page.locator(".dropdown-menu a.dropdown-item", has_text="My queries")).to_have_count(1)
    page.locator(".dropdown-menu a.dropdown-item", has_text="Shared by me").click()
    page.wait_for_url(re.compile(r".*/services/civis/shares/mine$"))
    entry = page.locator(f"section[data-share-id='{sid}']")
    expect(entry).to_have_attribute("data-state", "live")
    expect(entry.locator(".share-events summary")).to_contain_text("1 view(s), 0 copy(ies)")
    entry.locator(".share-events summary").click()
    expect(entry.locator(".share-event")).to_contain_text([f"{viewer} viewed v1"])

    # change the audience and expiry
    entry.locator("input[name=users]").fill(f"{viewer}, {later}")
    entry.locator("input[name=expires]").fill("2099-12-31")
    entry.locator("button.save").click()
    page.wait_for_url(re.compile(r".*/shares/mine$"))
    got = o.request("GET", f"api/shares/{sid}").json()
    assert got["audience"]["users"] == sorted([viewer, later])
    assert got["expires"] is not None and got["expires"] > 4e9
    expect(entry.locator(".share-expires")).to_have_text("2099-12-31 23:59 UTC")

    # a bad audience is a 400 naming the field; nothing changes
    entry.locator("input[name=users]").fill("a/b")
    entry.locator("button.save").click()
    expect(page.locator("#error-message")).to_contain_text("audience")
    assert o.request("GET", f"api/shares/{sid}").json()["audience"]["users"] == sorted([viewer, later])
    page.goto(f"{service_hub.base}shares/mine")

    # revoke asks first; dismissed nothing happens, accepted the link is gone
    page.once("dialog", lambda d: d.dismiss())
    entry.locator("button.revoke").click()
    expect(entry).to_have_attribute("data-state", "live")
    page.once("dialog", lambda d: d.accept())
    entry.locator("button.revoke").click()
    page.wait_for_url(re.compile(r".*/shares/mine$"))
    expect(entry).to_have_attribute("data-state", "revoked")
    assert vpage.goto(f"{service_hub.base}s/{sid}").status == 404
    vpage.goto(f"{service_hub.base}shares/with-me")
    expect(vpage.locator("h1")).to_have_text("Shared with me")
    expect(vpage.locator(f"tr[data-share-id='{sid}']")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "shared-by-me.png"), full_page=True)
    assert page.csp_violations == [] and vpage.csp_violations == []
