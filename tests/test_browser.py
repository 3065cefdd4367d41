"""What a person does in a browser: headless Chromium (Debian's) driven by Playwright."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.hub]

SCREENSHOTS = Path(os.environ.get("CIVIS_SCREENSHOTS", "/tmp/civis-screenshots"))


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def log_in(page, hub, user: str) -> None:
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", "civis-demo")
    page.click("#login_submit")
    page.wait_for_url(re.compile(r".*/hub/(home|spawn|spawn-pending).*"))


def test_choose_an_environment_start_and_come_back(hub, page):
    user = f"browser-{uuid.uuid4().hex[:6]}"
    log_in(page, hub, user)

    page.goto(f"{hub.url}/hub/spawn/{user}/report")
    expect(page.locator("#civis-env-python")).to_be_checked()
    expect(page.locator("label[for=civis-env-python-tabulate]")).to_contain_text("tabulate")
    expect(page.locator("#civis-image")).to_have_count(0)  # no allow-list, no image field
    page.check("#civis-env-python-tabulate")
    page.click("#spawn_form button[type=submit]")

    page.wait_for_url(re.compile(rf".*/user/{user}/report/lab.*"), timeout=240_000)
    expect(page.locator(".jp-Launcher")).to_be_visible(timeout=120_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "lab.png"))
    assert hub.server(user, "report")["user_options"] == {"environment": "python-tabulate"}

    hub.stop(user, "report")
    page.goto(f"{hub.url}/hub/spawn/{user}/report")
    expect(page.locator("#civis-env-python-tabulate")).to_be_checked()
    expect(page.locator("#civis-env-python")).not_to_be_checked()
    page.screenshot(path=str(SCREENSHOTS / "spawn-form.png"))


def test_a_failed_package_build_shows_the_installer_error(hub, page):
    user = f"browser-{uuid.uuid4().hex[:6]}"
    missing = f"civis-no-such-package-{uuid.uuid4().hex[:6]}"
    log_in(page, hub, user)

    page.goto(f"{hub.url}/hub/spawn/{user}/broken")
    page.fill("#civis-packages", missing)
    page.click("#spawn_form button[type=submit]")

    # a fast failure re-renders the form with the error; a slower one ends on the
    # progress page's log: either way the installer's message is on the page
    expect(page.locator("body")).to_contain_text(missing, timeout=120_000)
    expect(page.locator("body")).to_contain_text(
        re.compile(r"not found in the package registry|No solution found"), timeout=120_000
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "build-failed.png"), full_page=True)
    model = hub.server(user, "broken")
    # refused while the form waited: no entry stays; shown on the progress page: it stays stopped
    assert model is None or (not model["ready"] and not model["pending"])


def test_the_home_page_shows_each_servers_environment(hub, page):
    user = f"browser-{uuid.uuid4().hex[:6]}"
    hub.api("POST", f"/users/{user}")
    hub.start_and_wait(user, "plain", {"environment": "python"})
    hub.stop(user, "plain")
    r = hub.start(user, "maps", {"environment": "python-tabulate", "packages": ["humanize"]})
    assert r.status_code in (201, 202), r.text
    hub.wait_ready(user, "maps")
    log_in(page, hub, user)
    page.goto(f"{hub.url}/hub/home")
    row = page.locator('tr.home-server-row[data-server-name="maps"]')
    expect(row.locator(".civis-environment")).to_have_text(
        "Environment: python-tabulate + humanize"
    )
    expect(page.locator('tr.home-server-row[data-server-name="plain"] .civis-environment')).to_have_text(
        "Environment: python"
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "home.png"), full_page=True)


def test_the_form_after_an_error_keeps_what_was_typed(hub, page):
    user = f"browser-{uuid.uuid4().hex[:6]}"
    log_in(page, hub, user)
    start = len(hub.log())
    page.goto(f"{hub.url}/hub/spawn/{user}/typed")
    page.check("#civis-env-python-tabulate")
    typed = "humanize\nnumpy >>> 1\n"
    page.fill("#civis-packages", typed)
    for _attempt in range(2):  # the second error must not add another _xsrf either
        page.click("#spawn_form button[type=submit]")
        error = page.locator(".spawn-error-msg")
        expect(error).to_contain_text("Extra packages, line 2: not a valid requirement")
        assert "packages[" not in error.inner_text() and "^" not in error.inner_text()
        expect(page.locator("#civis-env-python-tabulate")).to_be_checked()
        expect(page.locator("#civis-packages")).to_have_value(typed)
        assert page.url.count("_xsrf=") == 1, page.url
        action = page.locator("#spawn_form").get_attribute("action")
        assert action.count("_xsrf=") == 1, action
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "form-error.png"), full_page=True)

    page.fill("#civis-packages", "humanize\n")  # fixed: the same form starts the server
    page.click("#spawn_form button[type=submit]")
    page.wait_for_url(re.compile(rf".*/user/{user}/typed/.*"), timeout=240_000)
    assert hub.server(user, "typed")["user_options"] == {
        "environment": "python-tabulate",
        "packages": ["humanize"],
    }
    lines = [line for line in hub.log()[start:].splitlines() if user in line]
    assert len([line for line in lines if "Refused to start" in line]) == 2, lines
    assert not [line for line in lines if line.startswith("[E ")], lines
    assert "Traceback" not in hub.log()[start:]
