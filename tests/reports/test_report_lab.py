"""JupyterLab's "Share…" dialog offers "Report" next to "Snapshot": in Chromium, in a real
server of a real hub, the real command creates a report link with its refresh policy
(cron schedule and time zone, who refreshes on demand, refresh on view, expiry) through the
civis service's REST API; a bad schedule is refused with the service's message."""

import calendar
import re

import nbformat
import pytest
from civis_service_support import logged_in_page
from civis_test_support import HubServer
from playwright.sync_api import expect
from report_support import ReportsAPI

pytestmark = [pytest.mark.browser, pytest.mark.hub]

LAB = 120_000  # ms: JupyterLab's first load in a new server, on a loaded machine


def test_share_dialog_creates_a_report(report_hub, browser):
    hub = report_hub
    owner, viewer = hub.create_user("rlabowner"), hub.create_user("rlabviewer")
    hub.start_and_wait(owner, "lab", {"environment": "python"})
    server = HubServer(hub, owner, "lab")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Daily report"), nbformat.v4.new_code_cell("1 + 1")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    assert server.api("PUT", "api/contents/daily.ipynb", json={"type": "notebook", "content": nb}).ok

    page = logged_in_page(browser, hub, owner)
    page.set_default_timeout(120_000)
    page.goto(f"{hub.url}/user/{owner}/lab/lab/tree/daily.ipynb")
    heading = page.locator(".jp-NotebookPanel .jp-RenderedMarkdown h1")
    expect(heading).to_contain_text("Daily report", timeout=LAB)

    def open_dialog_as_report():
        page.locator(".lm-MenuBar-itemLabel", has_text="File").click()
        page.locator(".lm-Menu-itemLabel", has_text="Share…").click()
        expect(page.locator("#civis-report-fields")).to_be_hidden()
        page.check("#civis-share-kind-report")
        expect(page.locator("#civis-report-fields")).to_be_visible()

    # a schedule the service refuses: its message, nothing created
    open_dialog_as_report()
    page.fill("#civis-report-cron", "61 7 * * *")
    page.locator(".jp-Dialog-button", has_text="Share").click()
    expect(page.locator(".jp-Dialog-body")).to_contain_text("schedule.cron", timeout=LAB)
    page.locator(".jp-Dialog-button").first.click()
    api = ReportsAPI(hub, hub.user_token(owner))
    assert api.request("GET", "").json()["reports"] == []

    open_dialog_as_report()
    page.fill("#civis-share-users", viewer)
    page.fill("#civis-share-title", "Daily <sales>")
    page.fill("#civis-report-cron", "0 7 * * 1-5")
    page.fill("#civis-report-timezone", "Europe/Paris")
    page.check("#civis-report-audience-refreshes")
    page.fill("#civis-report-refresh-after", "90")
    page.fill("#civis-share-expires", "2099-12-31")
    page.locator(".jp-Dialog-button", has_text="Share").click()
    link = page.locator("#civis-share-link")
    expect(link).to_have_value(re.compile(r"^http://.+/services/civis/r/[0-9a-f]{32}$"),
                               timeout=LAB)
    rid = link.input_value().rsplit("/", 1)[1]
    page.locator(".jp-Dialog-button", has_text="Close").click()

    report = api.request("GET", f"/{rid}").json()
    assert (report["path"], report["title"], report["on_demand"], report["refresh_after"]) == (
        "daily.ipynb", "Daily <sales>", "audience", 5400
    )
    assert report["schedule"] == {"cron": "0 7 * * 1-5", "timezone": "Europe/Paris"}
    assert report["environment"] == {"environment": "python"}  # the notebook's own
    share = hub.session.get(f"{hub.url}/services/civis/api/shares/{rid}", timeout=60,
                            headers={"Authorization": f"token {api.token}"}).json()
    assert share["kind"] == "report" and share["audience"]["users"] == [viewer]
    # the link works until the end of the chosen day (UTC)
    assert share["expires"] == calendar.timegm((2100, 1, 1, 0, 0, 0)) - 1
    viewer_api = ReportsAPI(hub, hub.user_token(viewer))
    assert viewer_api.request("GET", f"/{rid}").status_code == 200
    # it was never run: viewing it started its first run (refresh on view), which works
    assert report["running"] is not None
    assert api.wait_final(rid, report["running"]["id"])["status"] == "done"
