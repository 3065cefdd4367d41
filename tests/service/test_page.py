"""The "My queries" page: HubOAuth login, real HTML, XSRF-protected delete, in Chromium."""

import re
import uuid
from pathlib import Path

import pytest
from civis_service_support import arrow_stream
from civis_test_support import CHROMIUM, CHROMIUM_ARGS, login
from playwright.sync_api import expect, sync_playwright

pytestmark = [pytest.mark.browser, pytest.mark.hub]


def test_my_queries_lists_and_deletes_in_chromium(service_hub, tmp_path):
    user, token = service_hub.new_user("page")
    other, other_token = service_hub.new_user("other")
    c = service_hub.client(token)
    keep = c.put_ok(arrow_stream(10), sql="select * from kept <b>x</b>", connection="wh")["id"]
    gone = c.put_ok(arrow_stream(20), sql="select * from doomed", connection="wh")["id"]
    c.pin(keep, "reports/q3.ipynb")
    hidden = service_hub.client(other_token).put_ok(sql="select * from not_yours")["id"]

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.set_default_timeout(60_000)
            hub = service_hub.hub
            page.goto(f"{hub.url}/hub/login")
            page.fill("#username_input", user)
            page.fill("#password_input", "civis-demo")
            page.click("#login_submit")
            page.wait_for_url(re.compile(r".*/hub/.*"))
            page.goto(service_hub.base)  # OAuth with the hub, then the page
            page.wait_for_url(re.compile(r".*/services/civis/?$"))
            expect(page.locator("h1")).to_have_text("My queries")
            rows = page.locator("#results tbody tr")
            expect(rows).to_have_count(2)
            kept_row = page.locator(f"tr[data-result-id='{keep}']")
            expect(kept_row.locator(".sql")).to_have_text("select * from kept <b>x</b>")
            expect(kept_row.locator(".pinned")).to_contain_text("reports/q3.ipynb")
            expect(kept_row.locator("button.delete")).to_have_count(0)  # pinned: no delete
            expect(page.locator(f"tr[data-result-id='{hidden}']")).to_have_count(0)
            assert "not_yours" not in page.content()
            page.screenshot(path=str(tmp_path / "my-queries.png"))

            page.locator(f"tr[data-result-id='{gone}'] button.delete").click()
            page.wait_for_url(re.compile(r".*/services/civis/?$"))
            expect(rows).to_have_count(1)
            expect(page.locator(f"tr[data-result-id='{keep}']")).to_have_count(1)
        finally:
            browser.close()
    assert c.get(gone).status_code == 404
    assert c.get(keep).status_code == 200


def test_cookie_delete_needs_xsrf(service_hub):
    user, token = service_hub.new_user("xsrf")
    rid = service_hub.client(token).put_ok()["id"]
    session = login(service_hub.hub, user)
    r = session.get(service_hub.base, timeout=30)  # OAuth dance; sets the service cookie
    assert r.status_code == 200 and rid in r.text
    # a cross-site form post carries the cookie but not the token
    r = session.post(
        f"{service_hub.base}results/{rid}/delete",
        headers={"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "cross-site"},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 403
    # ... and the API via cookie without xsrf is refused too
    r = session.delete(f"{service_hub.base}api/results/{rid}", timeout=30)
    assert r.status_code == 403
    assert service_hub.client(token).get(rid).status_code == 200
    # another user's result id on the page's delete route: not found, nothing leaked
    r = session.post(
        f"{service_hub.base}results/{uuid.uuid4().hex}/delete",
        data={
            "_xsrf": re.search(
                r'name="_xsrf" value="([^"]+)"', session.get(service_hub.base, timeout=30).text
            ).group(1)
        },
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 404 and "result not found" in r.text
