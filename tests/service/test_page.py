"""The "My queries" page: a hub page (the hub's navigation bar, user menu, dark mode),
HubOAuth login, XSRF-protected delete that asks first — in Chromium, through a real hub."""

import re
import uuid

import pytest
from civis_service_support import arrow_stream, logged_in_page
from civis_test_support import login
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.hub]


def test_my_queries_is_a_hub_page_in_chromium(service_hub, browser, tmp_path):
    user, token = service_hub.new_user("page")
    _, other_token = service_hub.new_user("other")
    c = service_hub.client(token)
    keep = c.put_ok(arrow_stream(10), sql="select * from kept <b>x</b>", connection="wh")["id"]
    big = c.put_ok(arrow_stream(20), sql="select * from big", rows=1_234_567)["id"]
    gone = c.put_ok(arrow_stream(20), sql="select * from doomed", connection="wh")["id"]
    assert c.request(
        "PUT", f"api/results/{keep}/pins", json={"ref": "reports/q3.ipynb", "server": "etl"}
    ).ok
    c.pin(keep, "scratch.ipynb")  # from the default server
    hidden = service_hub.client(other_token).put_ok(sql="select * from not_yours")["id"]
    hub = service_hub.hub

    page = logged_in_page(browser, hub, user)
    # the hub's own pages list the service as "My queries"
    page.goto(f"{hub.url}/hub/home")
    page.locator("a.dropdown-toggle", has_text="Services").click()
    entry = page.locator(".dropdown-menu a.dropdown-item", has_text="My queries")
    expect(entry).to_be_visible()
    entry.click()  # OAuth with the hub, then the page
    page.wait_for_url(re.compile(r".*/services/civis/?$"))

    # the hub's page around the service's content: navigation bar, user menu, menus
    expect(page.locator("nav.navbar #jupyterhub-logo")).to_be_visible()
    expect(page.locator("#login_widget")).to_contain_text(user)
    expect(page.locator("#logout")).to_have_attribute("href", "/hub/logout")
    expect(page.locator("nav.navbar a.nav-link", has_text="Home")).to_have_attribute(
        "href", "/hub/home"
    )
    expect(page.locator(".dropdown-menu a.dropdown-item", has_text="My queries")).to_have_count(1)
    expect(page.locator("h1")).to_have_text("My queries")
    assert page.title().startswith("My queries")

    # dark mode as the hub has it: the toggle switches the theme and the choice stays
    theme = page.locator("html").get_attribute("data-bs-theme")
    page.click("#dark-theme-toggle")
    flipped = "dark" if theme == "light" else "light"
    expect(page.locator("html")).to_have_attribute("data-bs-theme", flipped)
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-bs-theme", flipped)

    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(3)
    kept_row = page.locator(f"tr[data-result-id='{keep}']")
    expect(kept_row.locator(".sql")).to_have_text("select * from kept <b>x</b>")
    pins = kept_row.locator(".pin")
    expect(pins).to_have_text(
        ["reports/q3.ipynb on server etl", "scratch.ipynb on the default server"]
    )
    expect(kept_row.locator("button.delete")).to_have_count(0)  # pinned: no delete
    expect(page.locator(f"tr[data-result-id='{big}'] .rows")).to_have_text("1,234,567")
    expect(page.locator(f"tr[data-result-id='{hidden}']")).to_have_count(0)
    assert "not_yours" not in page.content()
    page.screenshot(path=str(tmp_path / "my-queries.png"))

    # Delete asks first: dismissed, nothing happens; accepted, the result is gone
    asked = []

    def answer(accept):
        def on_dialog(dialog):
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        return on_dialog

    page.once("dialog", answer(False))
    page.locator(f"tr[data-result-id='{gone}'] button.delete").click()
    expect(rows).to_have_count(3)
    assert len(asked) == 1 and "Delete this stored result" in asked[0]
    assert c.get(gone).status_code == 200

    page.once("dialog", answer(True))
    page.locator(f"tr[data-result-id='{gone}'] button.delete").click()
    page.wait_for_url(re.compile(r".*/services/civis/?$"))
    expect(rows).to_have_count(2)
    assert len(asked) == 2
    assert c.get(gone).status_code == 404 and c.get(keep).status_code == 200
    # every script the page runs is allowed by its own policy
    assert page.csp_violations == []


def test_no_page_may_frame_it_not_even_one_on_the_hubs_origin(service_hub, browser):
    """Any page on the hub's origin (a notebook's output, another service) could frame
    "My queries" with the user's cookies and trick a click on Delete."""
    user, token = service_hub.new_user("framed")
    rid = service_hub.client(token).put_ok()["id"]
    hub = service_hub.hub
    page = logged_in_page(browser, hub, user)
    page.goto(service_hub.base)  # logged in to the service
    expect(page.locator(f"tr[data-result-id='{rid}']")).to_have_count(1)

    framing = f"{hub.url}/user/{user}/files/framing.html"  # a page on the hub's origin
    page.route(
        framing,
        lambda route: route.fulfill(
            content_type="text/html", body=f'<iframe id="f" src="{service_hub.base}"></iframe>'
        ),
    )
    with page.expect_event("framenavigated", lambda f: f.parent_frame is not None) as framed:
        page.goto(framing)
    assert framed.value.url.startswith("chrome-error://")  # Chromium refused to show it
    expect(page.frame_locator("#f").locator("#results")).to_have_count(0)
    assert service_hub.client(token).get(rid).status_code == 200


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
