"""The status page in headless Chromium: it shows a running query and its Cancel stops it;
JupyterLab's File menu opens it."""

from __future__ import annotations

import time
import uuid

import pytest
from civis_service_support import logged_in_page
from civis_test_support import HubRun, HubServer
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from tests.query_cache.conftest import wait_for

pytestmark = pytest.mark.browser


def test_status_page_shows_running_query_and_cancel_stops_it(server, pg, browser):
    marker = f"page_cancel_{uuid.uuid4().hex[:8]}"
    finished = server.run(sql=f"select 1 as done_before /* {marker} */", mode="refresh")
    status = server.submit(sql=f"select pg_sleep(60), '{marker}'", mode="refresh")
    wait_for(lambda: pg.active(marker), 20, message="the query to reach PostgreSQL")

    page = browser.new_page()
    try:
        # log in with the token once (sets the cookie), then use the page as a person would
        page.goto(f"{server.url}login?next=/civis/queries/status")
        page.fill("input[name=password]", server.token)
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_url("**/civis/queries/status")

        row = page.locator(f"tr[data-id='{status['id']}']")
        row.wait_for()
        assert "pg_sleep(60)" in row.locator("td.sql").inner_text()
        assert row.locator("td.state").inner_text() == "running"
        assert row.locator("td.cache").inner_text() == "miss"
        # it updates live: the elapsed time grows without a reload
        first = float(row.locator("td.elapsed").inner_text().split()[0])
        page.wait_for_function(
            "([id, t]) => { const r = document.querySelector(`tr[data-id='${id}'] td.elapsed`);"
            " return r && parseFloat(r.textContent) > t; }",
            arg=[status["id"], first],
        )
        done_row = page.locator(f"tr[data-id='{finished['id']}']")
        assert done_row.locator("td.state").inner_text() == "done"
        assert done_row.locator("button").count() == 0

        # XSRF is on: the same POST without the page's token is refused
        refused = page.evaluate(
            "url => fetch(url, {method: 'POST', credentials: 'same-origin'}).then(r => r.status)",
            f"{server.url}civis/queries/{finished['id']}/cancel",
        )
        assert refused == 403

        t0 = time.monotonic()
        row.get_by_role("button", name="Cancel").click()
        wait_for(lambda: not pg.active(marker), 2.0, message="pg_stat_activity to drop the query")
        assert time.monotonic() - t0 < 2.0
        page.locator(f"tr[data-id='{status['id']}'][data-state='cancelled']").wait_for()
        assert row.locator("button").count() == 0
        assert page.locator("#error").inner_text() == ""
    finally:
        page.close()


@pytest.fixture(scope="module")
def page_hub(pg, tmp_path_factory):
    # config/local: the demo query-cache wiring (pointed at the test database) and
    # the civis service, whose "My queries" page the status page links to
    with HubRun(
        tmp_path_factory.mktemp("qc-page-hub"), env={"CIVIS_DEMO_WAREHOUSE_URL": pg.url}
    ) as hub:
        yield hub


@pytest.mark.hub
def test_status_page_through_the_hub_lists_updates_and_cancels(page_hub, pg, browser):
    hub = page_hub
    user = hub.create_user("page")
    hub.start_and_wait(user, "a", {"environment": "python"})
    server = HubServer(hub, user, "a")
    # where the notebook's progress line links to, as the kernel computes it
    link = server.run(
        "from jupyterhub_civis.query_cache.client import find_server\n"
        "print(find_server().status_page)"
    ).strip()
    assert link == f"/user/{user}/a/civis/queries/status"

    marker = f"hub_page_{uuid.uuid4().hex[:8]}"
    r = server.api("POST", "civis/queries", json={"sql": f"select 1 as n /* {marker} */"})
    assert r.status_code == 201, r.text
    done = r.json()
    r = server.api("POST", "civis/queries", json={"sql": f"select pg_sleep(60), '{marker}'"})
    assert r.status_code == 201, r.text
    running = r.json()
    wait_for(lambda: pg.active(marker), 30, message="the query to reach PostgreSQL")

    page = browser.new_page()
    try:
        page.goto(f"{hub.url}/hub/login")
        page.fill("#username_input", user)
        page.fill("#password_input", "civis-demo")
        page.click("#login_submit")
        page.wait_for_url("**/hub/**")
        page.goto(hub.url + link)  # the hub's OAuth dance, then the page
        page.wait_for_url(f"**{link}")

        row = page.locator(f"tr[data-id='{running['id']}']")
        row.wait_for()
        assert page.locator("#error").inner_text() == ""  # the list poll was accepted
        assert "pg_sleep(60)" in row.locator("td.sql").inner_text()
        assert row.locator("td.state").inner_text() == "running"
        first = float(row.locator("td.elapsed").inner_text().split()[0])
        page.wait_for_function(
            "([id, t]) => { const r = document.querySelector(`tr[data-id='${id}'] td.elapsed`);"
            " return r && parseFloat(r.textContent) > t; }",
            arg=[running["id"], first],
        )
        page.locator(f"tr[data-id='{done['id']}'][data-state='done']").wait_for()

        row.get_by_role("button", name="Cancel").click()
        wait_for(lambda: not pg.active(marker), 5, message="pg_stat_activity to drop the query")
        page.locator(f"tr[data-id='{running['id']}'][data-state='cancelled']").wait_for()
        assert page.locator("#error").inner_text() == ""

        # the service's "My queries" page, one click away
        my_queries = page.get_by_role("link", name="My queries (all servers)")
        assert my_queries.get_attribute("href") == "/services/civis/"
        my_queries.click()
        page.wait_for_url("**/services/civis/")
        assert "My queries" in page.title() + page.locator("body").inner_text()
    finally:
        page.close()


@pytest.mark.hub
def test_jupyterlab_menu_opens_the_status_page_through_the_hub(page_hub, browser):
    hub = page_hub
    user = hub.create_user("labmenu")
    hub.start_and_wait(user, "lab", {"environment": "python"})
    server = HubServer(hub, user, "lab")
    marker = f"lab_menu_{uuid.uuid4().hex[:8]}"
    r = server.api("POST", "civis/queries", json={"sql": f"select 1 as n /* {marker} */"})
    assert r.status_code == 201, r.text
    done = r.json()

    page = logged_in_page(browser, hub, user)
    page.set_default_timeout(120_000)
    page.goto(f"{hub.url}/user/{user}/lab/lab")
    page.locator(".lm-MenuBar-itemLabel", has_text="File").click()
    with page.context.expect_page() as opened:
        page.locator(".lm-Menu-itemLabel", has_text="Queries (live status)").click()
    status = opened.value
    status.wait_for_url(f"**/user/{user}/lab/civis/queries/status")
    row = status.locator(f"tr[data-id='{done['id']}'][data-state='done']")
    row.wait_for()
    assert marker in row.locator("td.sql").inner_text()
    assert status.locator("#error").inner_text() == ""

    # and in the command palette. The status tab is done with: closed, so it cannot take
    # the focus back; the palette is a modal that closes when JupyterLab loses the
    # focus, so it is opened again if it closed before it could be typed in
    status.close()
    page.bring_to_front()
    palette = page.locator(".lm-CommandPalette-input")
    for attempt in range(3):
        page.locator("#jp-main-dock-panel").click()
        page.keyboard.press("Control+Shift+C")
        try:
            palette.fill("Queries (live", timeout=15_000)
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
    expect(page.locator(".lm-CommandPalette-item", has_text="Queries (live status)")).to_have_count(
        1, timeout=30_000
    )
