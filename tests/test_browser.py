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
    assert not model["ready"] and not model["pending"]
