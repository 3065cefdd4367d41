"""The report link's pages in Chromium through a real hub: the latest successful run
rendered as snapshots are (sanitised, in a sandboxed frame), Refresh with live progress,
history and compare, who may refresh, the one 404, a failed refresh shown to the owner
only — and hostile outputs produced by a run never execute."""

from __future__ import annotations

import json
import uuid

import pytest
from civis_service_support import logged_in_page
from playwright.sync_api import expect
from report_support import notebook, query_cell
from report_support import people as make_people

pytestmark = [pytest.mark.hub, pytest.mark.browser]

PARAMS = "region = 'west'\nfail = False"
BEACON = "/pwned/"
LONG = 240_000  # ms: a run starts a server for the owner


@pytest.fixture(scope="module")
def people(report_hub):
    return make_people(report_hub, ("powner", "pviewer", "pstranger"))


def base(report_hub) -> str:
    """The service's pages as a browser reaches them: through the hub's proxy."""
    return report_hub.url + "/services/civis/"


def page_of(report_hub, browser, user, path):
    page = logged_in_page(browser, report_hub, user)
    response = page.goto(base(report_hub) + path)
    return page, response


def frame_text(page, selector="#report-frame"):
    return page.frame_locator(selector).locator("body")


def test_report_page_refresh_history_rights_and_failure(report_hub, people, warehouse, browser):
    owner, api = people["powner"]
    viewer, viewer_api = people["pviewer"]
    stranger, _ = people["pstranger"]
    table = warehouse.table({"west": 1, "east": 2})
    nb = notebook(query_cell(table), "assert not fail, 'asked to fail'", parameters=PARAMS)
    report = api.create(nb, viewers=[viewer], title="Weekly sales")
    rid = report["id"]
    first = api.wait_final(rid, api.refresh(rid)["id"])
    assert first["status"] == "done", first

    # the owner's page: the latest run rendered in the sandboxed frame, with its facts
    page, response = page_of(report_hub, browser, owner, f"r/{rid}")
    assert response.status == 200
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    expect(page.locator("#report-title")).to_have_text("Weekly sales")
    expect(page.locator("#report-run")).to_contain_text(f"#{first['number']}")
    expect(page.locator("#report-results")).to_contain_text("1 query")
    expect(page.locator("#report-results")).to_contain_text(first["result_ids"][0])
    expect(page.locator("#report-refreshers")).to_have_text("the owner")
    assert page.locator("#report-frame").get_attribute("sandbox") == ""
    expect(frame_text(page)).to_contain_text('"amount":1}')
    direct = page.context.request.get(base(report_hub) + f"r/{rid}/render?run={first['id']}")
    csp = direct.headers["content-security-policy"]
    assert csp.startswith("sandbox;") and "allow-scripts" not in csp

    # the data changes; Refresh in the browser shows the run's progress, then the new data
    warehouse.execute(f"update {table} set amount = 10 where region = 'west'")
    page.click("#report-refresh")
    expect(page.locator("#report-progress")).to_contain_text("Refreshing")
    expect(frame_text(page)).to_contain_text('"amount":10}', timeout=LONG)
    expect(page.locator("#report-run")).to_contain_text("#2")
    expect(page.locator("#report-progress")).to_be_hidden()

    # history: both runs; the first still opens with the old data; compare shows both
    page.goto(base(report_hub) + f"r/{rid}/history")
    rows = page.locator("tr.report-run")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text(owner)  # started by the owner's click
    page.locator(f"tr[data-run-id='{first['id']}'] a.run-open").click()
    expect(page.locator("#report-run")).to_contain_text("#1")
    expect(frame_text(page)).to_contain_text('"amount":1}')
    page.click("#report-compare-link")
    expect(frame_text(page, "#compare-1")).to_contain_text('"amount":1}')
    expect(frame_text(page, "#compare-2")).to_contain_text('"amount":10}')
    change = page.locator("tr.compare-change")
    expect(change).to_have_count(1)  # only the query cell printed something else
    expect(change.locator(".before")).to_contain_text('"amount":1}')
    expect(change.locator(".after")).to_contain_text('"amount":10}')

    # the owner's links: Shared by me and My queries list the report
    for where in ("shares/mine", ""):  # "Shared by me", "My queries"
        page.goto(base(report_hub) + where)
        page.locator(f"#my-reports li[data-report-id='{rid}'] a.report-link").click()
        expect(page.locator("#report-title")).to_have_text("Weekly sales")

    # a refresh that fails keeps the last good run; the owner sees the failing cell
    failed = api.wait_final(rid, api.refresh(rid, parameters={"fail": True})["id"])
    assert failed["status"] == "failed", failed
    page.goto(base(report_hub) + f"r/{rid}")
    expect(page.locator("#report-error")).to_contain_text("asked to fail")
    expect(page.locator("#report-error-output")).to_contain_text("AssertionError")
    expect(frame_text(page)).to_contain_text('"amount":10}')
    page.locator("#report-error details summary").click()
    expect(page.locator("#report-error-log")).to_contain_text(f"run {failed['number']} of")
    page.goto(base(report_hub) + f"r/{rid}/history")
    row = page.locator(f"tr.report-run[data-run-id='{failed['id']}']")
    row.locator(".run-failure summary").click()
    expect(row.locator(".run-error-source")).to_contain_text("assert not fail")
    expect(row.locator(".run-error-output")).to_contain_text("AssertionError")
    row.locator(".run-log summary").click()
    expect(row.locator(".run-log pre")).to_contain_text("failed")

    # a viewer (no refresh right): the latest good run, no Refresh, no error; a POST is 403
    vpage, response = page_of(report_hub, browser, viewer, f"r/{rid}")
    assert response.status == 200
    expect(frame_text(vpage)).to_contain_text('"amount":10}')
    expect(vpage.locator("#report-refresh")).to_have_count(0)
    expect(vpage.locator("#report-error")).to_have_count(0)
    status = vpage.evaluate(
        """async ([api, xsrf]) => (await fetch(api + "/runs", {method: "POST",
             headers: {"X-XSRFToken": xsrf, "Content-Type": "application/json"}, body: "{}"})).status""",
        [vpage.locator("#civis-report").get_attribute("data-api"),
         vpage.locator("#civis-report").get_attribute("data-xsrf")],
    )
    assert status == 403
    assert viewer_api.request("POST", f"/{rid}/runs", json={}).status_code == 403
    vpage.goto(base(report_hub) + f"r/{rid}/history")
    expect(vpage.locator(".run-error")).to_have_count(0)
    expect(vpage.locator(".run-log")).to_have_count(0)

    # a stranger: the same 404 page as a link that does not exist
    spage, response = page_of(report_hub, browser, stranger, f"r/{rid}")
    assert response.status == 404
    theirs = spage.locator("#civis-page").inner_text()
    response = spage.goto(base(report_hub) + f"r/{uuid.uuid4().hex}")
    assert response.status == 404
    assert spage.locator("#civis-page").inner_text() == theirs
    for path in (f"r/{rid}/history", f"r/{rid}/render?run={first['id']}"):
        assert spage.goto(base(report_hub) + path).status == 404


def beacon(name: str) -> str:
    return f"fetch('{BEACON}{name}')"


def test_hostile_outputs_of_a_run_never_execute(report_hub, people, browser):
    owner, api = people["powner"]
    viewer, _ = people["pviewer"]
    html = (f"<p>table</p><script>{beacon('html-script')}</script>"
            f"<img src=x onerror=\"{beacon('html-onerror')}\">")
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" onload="{beacon("svg-onload")}">'
           f"<script>{beacon('svg-script')}</script></svg>")
    cell = (
        "from IPython.display import display, HTML, SVG, Javascript, Markdown\n"
        f"display(HTML({html!r}))\n"
        f"display(SVG({svg!r}))\n"
        f"display(Javascript({beacon('app-js')!r}))\n"
        f"display(Markdown({('<script>' + beacon('md') + '</script>[x](javascript:' + beacon('link') + ')')!r}))\n"
        "print('<script>plain</script>')"
    )
    report = api.create(notebook(cell), viewers=[viewer], title=f"<img src=x onerror=\"{beacon('title')}\">")
    run = api.wait_final(report["id"], api.refresh(report["id"])["id"])
    assert run["status"] == "done", run
    executed = json.dumps(api.run_notebook(report["id"], run["id"]))
    assert "html-script" in executed  # the run's outputs do hold the hostile HTML

    page = logged_in_page(browser, report_hub, viewer)
    seen = []
    page.on("request", lambda r: seen.append(r.url) if BEACON in r.url else None)
    page.context.route(f"**{BEACON}**", lambda route: route.fulfill(status=204))
    page.goto(base(report_hub) + f"r/{report['id']}")
    page.evaluate(beacon("control"))  # a script that does run is seen
    page.wait_for_load_state("networkidle")
    assert seen == [report_hub.url + BEACON + "control"]
    seen.clear()
    frame = page.frame_locator("#report-frame")
    expect(frame.locator("p", has_text="table")).to_be_visible()
    expect(frame.locator("body")).to_contain_text("<script>plain</script>")  # as text
    for selector in ("script", "svg", "iframe", "[onerror]", "[onload]", "[href^='javascript' i]"):
        expect(frame.locator(selector)).to_have_count(0)
    page.frame_locator("#report-frame").locator("body").click()
    page.wait_for_load_state("networkidle")
    assert seen == []


def test_parameter_form_for_viewers_who_may_refresh(report_hub, people, warehouse, browser):
    """A typed form from the notebook's ``parameters`` cell: a viewer with the refresh right
    runs the report with their values; a value of the wrong type is refused by the server
    (4xx, its message on the page) and starts nothing; a viewer without the right gets no form."""
    owner, api = people["powner"]
    viewer, _ = people["pviewer"]
    stranger, _ = people["pstranger"]
    table = warehouse.table({"west": 1, "east": 2})
    nb = notebook(query_cell(table), "assert not fail, 'asked to fail'", parameters=PARAMS)
    report = api.create(nb, viewers=[viewer], on_demand="audience", title="By region")
    rid = report["id"]
    page, _ = page_of(report_hub, browser, viewer, f"r/{rid}")
    form = page.locator("#report-parameters")
    expect(form.locator("input[name=region]")).to_have_value("west")
    expect(form.locator("input[name=region]")).to_have_attribute("data-kind", "str")
    expect(form.locator("input[name=fail]")).to_have_attribute("type", "checkbox")
    expect(form.locator("input[name=fail]")).not_to_be_checked()
    expect(page.locator("#report-save-scheduled")).to_have_count(0)  # the owner's only

    # a hostile value: the wrong type (and code) for a bool; the server refuses it
    page.evaluate("""() => { const i = document.querySelector("#report-parameters [name=fail]");
                             i.dataset.kind = "str"; i.type = "text";
                             i.value = "__import__('os').system('id')"; }""")
    form.locator("button[type=submit]").click()
    expect(page.locator("#report-message")).to_contain_text("parameters.fail")
    assert api.request("GET", f"/{rid}/runs").json()["runs"] == []

    page.reload()
    form.locator("input[name=region]").fill("east")
    form.locator("button[type=submit]").click()
    expect(frame_text(page)).to_contain_text('"amount":2}', timeout=LONG)
    (run,) = api.request("GET", f"/{rid}/runs").json()["runs"]
    assert run["triggered_by"] == viewer and run["parameters"] == {"region": "east", "fail": False}

    # no refresh right (not in the audience at all here): no page, no form
    spage, response = page_of(report_hub, browser, stranger, f"r/{rid}")
    assert response.status == 404
    only_owner = api.create(nb, viewers=[viewer], title="Owner refreshes")
    vpage, _ = page_of(report_hub, browser, viewer, f"r/{only_owner['id']}")
    expect(vpage.locator("#report-title")).to_have_text("Owner refreshes")
    expect(vpage.locator("#report-parameters")).to_have_count(0)


def test_owner_sets_the_scheduled_values_from_the_page(report_hub, people, warehouse, browser):
    """The owner's form starts from the report's own values; "Use for scheduled runs" keeps
    the typed ones (checked by the server: a wrong type is refused and changes nothing).
    Through the API only the owner changes the refresh policy."""
    owner, api = people["powner"]
    viewer, viewer_api = people["pviewer"]
    stranger, stranger_api = people["pstranger"]
    nb = notebook(query_cell(warehouse.table({"west": 1})), parameters=PARAMS)
    report = api.create(nb, viewers=[viewer], on_demand="audience",
                        schedule={"cron": "0 7 * * *", "timezone": "UTC"})
    rid = report["id"]
    page, _ = page_of(report_hub, browser, owner, f"r/{rid}")
    form = page.locator("#report-parameters")
    page.evaluate("""() => { const i = document.querySelector("#report-parameters [name=fail]");
                             i.dataset.kind = "str"; i.type = "text"; i.value = "yes"; }""")
    page.click("#report-save-scheduled")
    expect(page.locator("#report-message")).to_contain_text("parameters.fail")
    assert api.request("GET", f"/{rid}").json()["parameters"] == {}

    page.reload()
    form.locator("input[name=region]").fill("north")
    page.click("#report-save-scheduled")
    expect(page.locator("#report-message")).to_contain_text("Scheduled runs will use these values")
    assert api.request("GET", f"/{rid}").json()["parameters"] == {"region": "north", "fail": False}
    page.reload()
    expect(form.locator("input[name=region]")).to_have_value("north")
    # a viewer who may refresh still starts from the notebook's defaults
    vpage, _ = page_of(report_hub, browser, viewer, f"r/{rid}")
    expect(vpage.locator("#report-parameters input[name=region]")).to_have_value("west")

    def patch(who, body):
        return who.request("PATCH", f"/{rid}", json=body)

    assert patch(viewer_api, {"parameters": {"region": "x"}}).status_code == 403
    assert patch(stranger_api, {"parameters": {"region": "x"}}).status_code == 404
    for body, field in [({}, "say what to change"), ({"on_demand": None}, "on_demand"),
                        ({"schedule": {"cron": "61 * * * *"}}, "schedule.cron"),
                        ({"colour": "red"}, "colour")]:
        r = patch(api, body)
        assert r.status_code == 400 and field in r.json()["message"], (body, r.text)
    before = api.request("GET", f"/{rid}").json()
    assert before["schedule"] == {"cron": "0 7 * * *", "timezone": "UTC"} and before["next_fire"]
    changed = patch(api, {"schedule": None, "refresh_after": 3600}).json()
    assert changed["schedule"] is None and changed["next_fire"] is None
    assert changed["refresh_after"] == 3600 and changed["parameters"] == before["parameters"]
