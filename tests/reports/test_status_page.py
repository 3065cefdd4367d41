"""The server's status page in Chromium lists a notebook run in progress (cell i of n)
next to the queries, and its Cancel stops the run."""

from __future__ import annotations

import uuid

import pytest
from civis_test_support import wait_for
from report_support import Executor, notebook

pytestmark = [pytest.mark.hub, pytest.mark.browser]


def test_status_page_shows_a_run_in_progress_and_cancels_it(report_hub, owner_server, browser, tmp_path):
    user, server, token = owner_server
    flag = tmp_path / f"go-{uuid.uuid4().hex}"
    wait_cell = f"import os, time\nwhile not os.path.exists({str(flag)!r}):\n    time.sleep(0.05)"
    ex = Executor(server, token)
    run = ex.start(notebook("x = 1", wait_cell, "print('after')"), path="reports/status.ipynb")

    page = browser.new_page()
    try:
        page.goto(f"{report_hub.url}/hub/login")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", "civis-demo")
        page.click("input[type=submit], button[type=submit]")
        page.wait_for_url("**/hub/**")
        page.goto(f"{server.base}civis/queries/status")
        row = page.locator(f"#runs tr[data-id='{run['id']}'][data-state='running']")
        row.wait_for()
        assert row.locator("td.path").inner_text() == "reports/status.ipynb"
        page.wait_for_function(
            "id => { const r = document.querySelector(`#runs tr[data-id='${id}'] td.progress`);"
            " return r && r.textContent === 'cell 2 of 3'; }",
            arg=run["id"],
        )
        row.get_by_role("button", name="Cancel").click()
        page.locator(f"#runs tr[data-id='{run['id']}'][data-state='cancelled']").wait_for()
        assert ex.status(run["id"])["state"] == "cancelled"
        # the queries above load too (they need the XSRF token under JupyterHub's cookie)
        assert page.locator("#error").inner_text() == ""
    finally:
        page.close()
        flag.write_text("go")


def test_my_queries_lists_report_runs_in_progress(report_hub, owner_server, browser, warehouse, tmp_path):
    from report_support import ReportsAPI

    user, _, token = owner_server
    flag = tmp_path / f"go-{uuid.uuid4().hex}"
    wait_cell = f"import os, time\nwhile not os.path.exists({str(flag)!r}):\n    time.sleep(0.05)"
    api = ReportsAPI(report_hub, token)
    report = api.create(notebook("x = 1", wait_cell), title="Weekly <b>sales</b>")
    run = api.refresh(report["id"])
    page = browser.new_page()
    try:
        page.goto(f"{report_hub.url}/hub/login")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", "civis-demo")
        page.click("input[type=submit], button[type=submit]")
        page.wait_for_url("**/hub/**")

        def shown():
            page.goto(report_hub.url + "/services/civis/")
            cell = page.locator(f"#report-runs tr[data-run-id='{run['id']}'] td.progress-cell")
            return cell.count() and cell.inner_text() == "cell 2 of 2"

        wait_for(shown, timeout=240, interval=0.5, message="the run on My queries")
        row = page.locator(f"#report-runs tr[data-run-id='{run['id']}']")
        assert row.locator("td.title").inner_text() == "Weekly <b>sales</b>"  # text, not markup
        assert row.locator("td.state").inner_text() == "running"
        # a state change by cookie needs the XSRF token: a bare fetch is refused
        refused = page.evaluate(
            "url => fetch(url, {method: 'POST', credentials: 'same-origin', body: '{}'})"
            ".then(r => r.status)",
            f"{report_hub.url}/services/civis/api/reports/{report['id']}/runs/{run['id']}/cancel",
        )
        assert refused == 403
        assert api.run(report["id"], run["id"])["status"] == "running"
    finally:
        page.close()
        flag.write_text("go")
    assert api.wait_final(report["id"], run["id"])["status"] == "done"
