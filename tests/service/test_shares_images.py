"""A share's images are files of their own next to its sandboxed rendering
(``s/<id>/render/img/<sha256>.<ext>?v=N``): they show in Chromium inside the
sandboxed frame, carry the rendering's audience check and its one 404, are immutable,
and a hostile SVG among them runs nothing, not even opened on its own."""

import base64
import hashlib
import json
import re
import struct
import zlib

import pytest
import requests
from civis_service_support import logged_in_page
from playwright.sync_api import expect

from tests.service.test_shares_viewer import BEACON, beacon, cell, display, watch

pytestmark = [pytest.mark.browser, pytest.mark.hub]


def png(width: int, height: int) -> bytes:
    """A real (red) PNG of the given size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + b"\xff\0\0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


HOSTILE_SVG = (
    f'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30" '
    f'onload="{beacon("svg-file-onload")}"><script>{beacon("svg-file-script")}</script>'
    f'<rect width="40" height="30" fill="blue"/></svg>'
)


def notebook(picture: bytes) -> str:
    return json.dumps({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [
            cell("markdown", "# Figures"),
            cell("code", "plot()", [
                display({"image/png": base64.b64encode(picture).decode(), "text/plain": "fig"}),
                display({"image/svg+xml": HOSTILE_SVG, "text/plain": "svg"}),
            ]),
        ],
    })


@pytest.fixture
def image_share(service_hub):
    owner, owner_token = service_hub.new_user("iowner")
    viewer, viewer_token = service_hub.new_user("iviewer")
    picture = png(30, 20)
    r = service_hub.client(owner_token).request(
        "POST", "api/shares",
        json={"notebook": notebook(picture), "audience": {"users": [viewer]}},
    )
    assert r.status_code == 201, r.text
    return r.json()["id"], viewer, viewer_token, picture


def test_images_show_in_the_sandboxed_rendering(service_hub, browser, image_share):
    sid, viewer, _, picture = image_share
    page = logged_in_page(browser, service_hub.hub, viewer)
    seen = watch(page)
    page.goto(f"{service_hub.base}s/{sid}")
    frame = page.frame_locator("#share-frame")
    expect(frame.locator("h1")).to_have_text("Figures")
    images = frame.locator("img")
    expect(images).to_have_count(2)
    sources = [images.nth(i).get_attribute("src") for i in range(2)]
    name = hashlib.sha256(picture).hexdigest() + ".png"
    assert sources[0] == f"render/img/{name}?v=1"
    assert re.fullmatch(r"render/img/[0-9a-f]{64}\.svg\?v=1", sources[1])
    for i in range(2):
        images.nth(i).scroll_into_view_if_needed()
        expect(images.nth(i)).to_have_js_property("complete", True)
    assert [images.nth(i).evaluate("i => i.naturalWidth") for i in range(2)] == [30, 40]
    # the rendering holds no image bytes of its own
    assert "data:" not in page.frames[1].content()
    page.wait_for_load_state("networkidle")
    assert [u for u in seen["requests"] if BEACON in u] == []
    assert seen["dialogs"] == []
    assert page.csp_violations == []


def test_image_files_audience_headers_and_404(service_hub, image_share):
    sid, _, viewer_token, picture = image_share
    _, stranger_token = service_hub.new_user("istranger")
    name = hashlib.sha256(picture).hexdigest() + ".png"
    url = f"{service_hub.base}s/{sid}/render/img/{name}?v=1"

    def get(token, u=url):
        return requests.get(u, headers={"Authorization": f"token {token}"}, timeout=30)

    r = get(viewer_token)
    assert r.status_code == 200 and r.content == picture
    assert r.headers["Content-Type"] == "image/png"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert r.headers["Content-Security-Policy"].startswith("sandbox; default-src 'none'")
    refusals = [
        get(stranger_token),  # not in the audience
        get(viewer_token, url.replace(name, "0" * 64 + ".png")),  # no such image
        get(viewer_token, url.replace("?v=1", "?v=2")),  # no such version
    ]
    assert [x.status_code for x in refusals] == [404, 404, 404]
    assert len({x.text for x in refusals}) == 1  # the same 404, whatever the reason


def test_hostile_svg_file_runs_nothing_opened_on_its_own(service_hub, browser, image_share):
    sid, viewer, viewer_token, _ = image_share
    rendering = requests.get(f"{service_hub.base}s/{sid}/render?v=1", timeout=30,
                             headers={"Authorization": f"token {viewer_token}"}).text
    svg_url = re.search(r'src="(render/img/[0-9a-f]{64}\.svg)\?v=1"', rendering).group(1)
    page = logged_in_page(browser, service_hub.hub, viewer)
    seen = watch(page)
    page.evaluate(beacon("control"))  # a script that does run is seen by the watch
    response = page.goto(f"{service_hub.base}s/{sid}/{svg_url}?v=1")
    assert response.status == 200
    assert response.headers["content-type"] == "image/svg+xml"
    page.wait_for_load_state("networkidle")
    assert [u for u in seen["requests"] if BEACON in u] == [f"{service_hub.hub.url}{BEACON}control"]
    assert seen["dialogs"] == []
    assert response.headers["content-security-policy"].startswith("sandbox;")


def test_a_rendering_kept_with_inlined_images_is_rendered_again(service_hub, image_share):
    """A version rendered by an older release (one HTML document, images as data: URLs)
    gets its image files on its first view here, and the database keeps the new kind."""
    import sqlalchemy as sa

    sid, _, viewer_token, picture = image_share
    engine = sa.create_engine(f"sqlite:///{service_hub.data_dir}/civis-service.sqlite")
    old = b"<!DOCTYPE html><html><body><img src='data:image/png;base64,AAAA'></body></html>"
    kept = sa.text("SELECT rendered FROM civis_share_versions WHERE share_id = :s")
    with engine.begin() as c:  # before any view: nothing of it is in the service's memory
        c.execute(sa.text("UPDATE civis_share_versions SET rendered = :r WHERE share_id = :s"),
                  {"r": old, "s": sid})
    r = requests.get(f"{service_hub.base}s/{sid}/render?v=1", timeout=60,
                     headers={"Authorization": f"token {viewer_token}"})
    name = hashlib.sha256(picture).hexdigest() + ".png"
    assert r.status_code == 200 and f"render/img/{name}?v=1" in r.text and "data:" not in r.text
    with engine.connect() as c:
        assert c.execute(kept, {"s": sid}).scalar().startswith(b"PK")
    engine.dispose()
