"""Fixtures: a real JupyterHub (config/local) shared by the session's hub tests, a
factory for hubs of a test's own (``HubRun`` underneath both), and Chromium."""

from pathlib import Path

import pytest
from civis_test_support import CHROMIUM, CHROMIUM_ARGS, HubRun


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    """One real JupyterHub for the session, configured by config/local."""
    with HubRun(tmp_path_factory.mktemp("hub")) as hub:
        yield hub


@pytest.fixture
def hub_factory(tmp_path):
    """``hub_factory(extra_config="", env=None, name="hub") -> HubRun``, started; every
    run is stopped (and its processes gone) when the test ends. ``run.stop()`` and
    ``run.start()`` restart it on the same state folder."""
    runs = []

    def make(extra_config: str = "", env: dict | None = None, name: str = "hub") -> HubRun:
        run = HubRun(tmp_path / name, extra_config, env)
        runs.append(run)
        run.start()
        return run

    make.tmp_path = tmp_path  # where run "<name>" keeps its state: tmp_path / name
    yield make
    for run in runs:
        if run.hub is not None and run.hub.process.poll() is None:
            run.stop()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright (never a downloaded browser). Per module:
    Playwright's sync API keeps an event loop running in this thread while it is open,
    which tests that start their own loop must not meet."""
    from playwright.sync_api import expect, sync_playwright

    # expect()'s own default is 5 s, shorter than JupyterLab takes to open a notebook
    # on a loaded 2-core CI machine; a failing assertion still fails, only later
    expect.set_options(timeout=60_000)
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
