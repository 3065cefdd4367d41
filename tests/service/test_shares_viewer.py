"""The viewer of a shared link in Chromium through a real hub: a hub page with who,
when, environment, pinned results and versions; the notebook rendered sanitised in a
sandboxed frame — and a set of hostile notebooks of which nothing may execute."""

import base64
import json
import re

import pytest
from civis_service_support import logged_in_page
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.hub]

BEACON = "/pwned/"


def beacon(name: str) -> str:
    return f"fetch('{BEACON}{name}')"


def cell(cell_type, source, outputs=(), **meta):
    c = {"cell_type": cell_type, "id": f"c{abs(hash(source)) % 10**8}", "metadata": meta,
         "source": source}
    if cell_type == "code":
        c.update(execution_count=1, outputs=list(outputs))
    return c


def display(data: dict) -> dict:
    return {"output_type": "display_data", "data": data, "metadata": {}}


def hostile_notebook() -> dict:
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" onload="{beacon("svg-onload")}">'
        f"<script>{beacon('svg-script')}</script><rect width='5' height='5'/></svg>"
    )
    widget_state = {
        "state": {"x": {"model_name": "HTMLModel", "state": {
            "value": f"<img src=x onerror=\"{beacon('widget-value')}\">"}}},
        "version_major": 2, "version_minor": 0,
    }
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "widgets": {"application/vnd.jupyter.widget-state+json": widget_state},
            "jupyterhub_civis": {"environment": {"name": "py311", "packages": ["duckdb"]}},
        },
        "cells": [
            cell("markdown", "# Benign heading\n\nSome **bold** text."),
            cell(
                "markdown",
                f"[click me](javascript:{beacon('md-link')})\n\n"
                f"<a id='raw' href=\"javascript:{beacon('md-raw-link')}\">raw</a>\n\n"
                f"<img src=x onerror=\"{beacon('md-onerror')}\">\n\n"
                f"<iframe src=\"javascript:{beacon('md-iframe')}\"></iframe>\n\n"
                f"<script>{beacon('md-script')}</script>"
                f"<style>@import url('{BEACON}md-css');</style>"
                f"<link rel=stylesheet href='{BEACON}md-link-css'>"
                f"<meta http-equiv=refresh content=\"0;url={BEACON}md-refresh\">"
                f"<form action='{BEACON}md-form'><button id=go>go</button></form>",
            ),
            cell(
                "code",
                "evil()",
                [
                    display({
                        "text/html": f"<p id=hostile-html>table</p><script>{beacon('html-script')}</script>"
                        f"<img src=x onerror=\"{beacon('html-onerror')}\">"
                        f"<object data='{BEACON}html-object'></object>",
                        "text/plain": "x",
                    }),
                    display({"image/svg+xml": svg}),
                    display({"application/javascript": beacon("app-js")}),
                    display({"text/markdown": f"<script>{beacon('output-md')}</script>"}),
                    display({
                        "application/vnd.jupyter.widget-view+json": {"model_id": "x", "version_major": 2},
                        "text/plain": "widget",
                    }),
                    display({"image/png": base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()}),
                    {"output_type": "stream", "name": "stdout", "text": "<script>plain</script>"},
                ],
            ),
        ],
    }


def watch(page):
    seen = {"requests": [], "dialogs": []}
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.context.route(f"**{BEACON}**", lambda route: route.fulfill(status=204))
    return seen


def test_hostile_notebooks_never_execute(service_hub, browser, tmp_path):
    owner, owner_token = service_hub.new_user("hostile")
    viewer, _ = service_hub.new_user("victim")
    o = service_hub.client(owner_token)
    title = f"<img src=x onerror=\"{beacon('title')}\">"
    path = f"\"><script>{beacon('path')}</script>.ipynb"
    r = o.request(
        "POST",
        "api/shares",
        json={
            "notebook": json.dumps(hostile_notebook()),
            "title": title,
            "path": path,
            "audience": {"users": [viewer]},
        },
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]

    page = logged_in_page(browser, service_hub.hub, viewer)
    seen = watch(page)
    response = page.goto(f"{service_hub.base}s/{sid}")
    # control: a script that does run is seen by the watch
    page.evaluate(beacon("control"))
    page.wait_for_load_state("networkidle")
    assert [u for u in seen["requests"] if BEACON in u] == [f"{service_hub.hub.url}{BEACON}control"]
    seen["requests"].clear()
    assert response.status == 200
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    expect(page.locator("#share-title")).to_have_text(title)  # shown as text
    expect(page.locator("#share-path")).to_have_text(path)
    expect(page.locator("#share-owner")).to_have_text(owner)
    expect(page.locator("#share-environment")).to_contain_text("py311 + duckdb")
    frame_el = page.locator("#share-frame")
    # sandboxed with one flag: the frame keeps its origin (its image files need the
    # session cookie) but may not run script, submit, navigate the page or open popups
    assert frame_el.get_attribute("sandbox") == "allow-same-origin"
    frame = page.frame_locator("#share-frame")
    expect(frame.locator("h1", has_text="Benign heading")).to_be_visible()
    expect(frame.locator("#hostile-html")).to_have_count(0)  # ids are not kept
    expect(frame.locator("p", has_text="table")).to_be_visible()
    # nothing active survived the sanitiser (the title stays text: escaped in <title>)
    for selector in ("script", "iframe", "svg", "form", "object", "embed", "link", "base",
                     "meta[http-equiv]", "body style", "[onerror]", "[onload]", "[onclick]",
                     "[href^='javascript' i]", "[src^='javascript' i]", "[id]"):
        expect(frame.locator(selector)).to_have_count(0)
    body = page.frames[1].inner_html("body")
    for marker in ("onerror", "onload", "javascript:", "widget-state", "HTMLModel"):
        assert marker not in body, marker
    # a click on what was a javascript: link goes nowhere
    frame.locator("a", has_text="click me").click()
    frame.locator("a", has_text="raw").click()
    page.wait_for_load_state("networkidle")
    # the rendering on its own (opened directly) is still sandboxed by its CSP
    direct = page.context.new_page()
    response = direct.goto(f"{service_hub.base}s/{sid}/render?v=1")
    csp = response.headers["content-security-policy"]
    assert csp.startswith("sandbox allow-same-origin;")
    assert "allow-scripts" not in csp and "script-src" not in csp and "default-src 'none'" in csp
    direct.wait_for_load_state("networkidle")
    page.screenshot(path=str(tmp_path / "hostile.png"), full_page=True)
    assert [u for u in seen["requests"] if BEACON in u] == []
    assert seen["dialogs"] == []


def test_viewer_page_versions_and_the_one_404(service_hub, browser):
    owner, owner_token = service_hub.new_user("vowner")
    viewer, _ = service_hub.new_user("vviewer")
    stranger, _ = service_hub.new_user("vstranger")
    o = service_hub.client(owner_token)
    rid = o.put_ok()["id"]

    def nb(text):
        return json.dumps({
            "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"jupyterhub_civis": {"queries": {"k": {"result_id": rid}}}},
            "cells": [cell("markdown", f"# {text}")],
        })

    sid = o.request(
        "POST", "api/shares", json={"notebook": nb("First"), "path": "a/report.ipynb",
                                    "audience": {"users": [viewer]}}
    ).json()["id"]
    o.request("POST", f"api/shares/{sid}/versions", json={"notebook": nb("Second")})

    page = logged_in_page(browser, service_hub.hub, viewer)
    page.goto(f"{service_hub.base}s/{sid}")
    expect(page.locator("#share-title")).to_have_text("report.ipynb")
    expect(page.locator("#share-results")).to_have_text("1")
    expect(page.locator("#share-version")).to_contain_text("2 of 2")
    expect(page.frame_locator("#share-frame").locator("h1")).to_have_text("Second")
    page.locator("#share-versions a", has_text="v1").click()
    page.wait_for_url(re.compile(r".*\?v=1$"))
    expect(page.frame_locator("#share-frame").locator("h1")).to_have_text("First")
    assert page.csp_violations == []

    # not in the audience, mistyped, unknown version, revoked: the same page
    other = logged_in_page(browser, service_hub.hub, stranger)
    texts = []
    for url in (f"s/{sid}", f"s/{sid[:-1]}{'A' if sid[-1] != 'A' else 'B'}", f"s/{sid}?v=9",
                f"s/{sid}?v=x"):
        r = (other if url == f"s/{sid}" else page).goto(service_hub.base + url)
        assert r.status == 404
        texts.append(page.locator("#error-message").text_content() if url != f"s/{sid}"
                     else other.locator("#error-message").text_content())
    o.request("DELETE", f"api/shares/{sid}")
    assert page.goto(f"{service_hub.base}s/{sid}").status == 404
    texts.append(page.locator("#error-message").text_content())
    assert set(texts) == {"share not found"}

    # the owner saw the viewer's views
    events = o.request("GET", f"api/shares/{sid}/events").json()["events"]
    assert {(e["user"], e["action"]) for e in events} == {(viewer, "view")}
