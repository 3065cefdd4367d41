"""JupyterLab's "Share…" command in Chromium, in a real server of a real hub: from the
File menu a new link, from the notebook toolbar the next version of the same link;
the link opens the viewer."""

import re

import nbformat
import pytest
import requests
from civis_service_support import logged_in_page
from civis_test_support import HubServer
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.hub]


def open_in_lab(hub, browser, owner, server_name, path, heading):
    """Start ``owner``'s named server, put a notebook titled ``heading`` at ``path`` and
    open it in JupyterLab, logged in as ``owner``; the page."""
    hub.start_and_wait(owner, server_name)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {heading}")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    assert HubServer(hub, owner, server_name).api(
        "PUT", f"api/contents/{path}", json={"type": "notebook", "content": nb}
    ).ok
    page = logged_in_page(browser, hub, owner)
    page.set_default_timeout(120_000)
    page.goto(f"{hub.url}/user/{owner}/{server_name}/lab/tree/{path}")
    # JupyterLab's first load on a loaded machine can take long
    expect(page.locator(".jp-NotebookPanel .jp-RenderedMarkdown h1")).to_contain_text(
        heading, timeout=120_000
    )
    return page


def test_share_from_jupyterlab(hub, browser, tmp_path):
    owner, viewer = hub.create_user("labowner"), hub.create_user("labviewer")
    page = open_in_lab(hub, browser, owner, "lab", "report.ipynb", "Shared from Lab")
    expect(page.locator(".jp-NotebookPanel-toolbar .civis-share-button")).to_be_visible()

    # File menu › Share…
    page.locator(".lm-MenuBar-itemLabel", has_text="File").click()
    page.locator(".lm-Menu-itemLabel", has_text="Share…").click()
    page.fill("#civis-share-users", viewer)
    page.fill("#civis-share-title", "Lab <report>")
    page.locator(".jp-Dialog-button", has_text="Share").click()
    link = page.locator("#civis-share-link")
    expect(link).to_have_value(re.compile(r"^http://.+/services/civis/s/[A-Za-z0-9_-]{32}$"))
    url = link.input_value()
    page.locator(".jp-Dialog-button", has_text="Close").click()

    token = hub.user_token(owner)
    mine = requests.get(f"{hub.url}/services/civis/api/shares", timeout=60,
                        headers={"Authorization": f"token {token}"}).json()["shares"]
    assert [(s["path"], s["title"], s["server"], len(s["versions"])) for s in mine] == [
        ("report.ipynb", "Lab <report>", "lab", 1)
    ]
    assert mine[0]["audience"]["users"] == [viewer]

    # the notebook toolbar's Share… publishes version 2 of the same link
    page.locator(".jp-NotebookPanel-toolbar .civis-share-button").click()
    page.fill("#civis-share-users", viewer)
    page.locator(".jp-Dialog-button", has_text="Share").click()
    expect(page.locator("#civis-share-link")).to_have_value(url)
    expect(page.locator(".jp-Dialog-body")).to_contain_text("Version 2")
    page.locator(".jp-Dialog-button", has_text="Close").click()

    # no audience: the dialog says what to do, nothing is published
    page.locator(".jp-NotebookPanel-toolbar .civis-share-button").click()
    page.locator(".jp-Dialog-button", has_text="Share").click()
    expect(page.locator(".jp-Dialog-body")).to_contain_text("Audience: name at least one")
    page.locator(".jp-Dialog-button").first.click()

    # the command is in the palette too
    page.keyboard.press("Control+Shift+C")
    page.keyboard.type("Share…")
    expect(page.locator(".lm-CommandPalette-item", has_text="Share…")).to_have_count(1)
    page.keyboard.press("Escape")
    page.screenshot(path=str(tmp_path / "lab-share.png"))

    # the viewer opens the link
    vpage = logged_in_page(browser, hub, viewer)
    vpage.goto(url)
    expect(vpage.locator("#share-title")).to_have_text("Lab <report>")
    expect(vpage.locator("#share-version")).to_contain_text("2 of 2")
    expect(vpage.frame_locator("#share-frame").locator("h1")).to_have_text("Shared from Lab")


def test_share_live_from_jupyterlab(hub, browser):
    """Share… › "Live (share this running server)": a JupyterHub share code of this
    server through the service, shown with Copy, listed on "Shared by me" and revoked
    there (the hub's code is gone with it)."""
    owner = hub.create_user("liveowner")
    page = open_in_lab(hub, browser, owner, "pairlab", "pair.ipynb", "Pair on this")
    page.locator(".lm-MenuBar-itemLabel", has_text="File").click()
    page.locator(".lm-Menu-itemLabel", has_text="Share…").click()
    page.check("#civis-share-kind-live")
    expect(page.locator("#civis-share-users")).to_be_disabled()
    page.fill("#civis-share-title", "pairing")
    page.locator(".jp-Dialog-button", has_text="Share").click()
    expect(page.locator(".jp-Dialog-header")).to_contain_text("Shared live")
    link = page.locator("#civis-share-link")
    expect(link).to_have_value(re.compile(r"^http://.+/hub/accept-share\?code=.+"))
    page.locator(".jp-Dialog-button", has_text="Close").click()

    token = hub.user_token(owner)
    api = requests.Session()
    api.headers["Authorization"] = f"token {token}"
    mine = api.get(f"{hub.url}/services/civis/api/shares", timeout=60).json()["shares"]
    assert [(s["kind"], s["server"], s["title"]) for s in mine] == [("live", "pairlab", "pairing")]
    codes = api.get(f"{hub.url}/hub/api/share-codes/{owner}/pairlab", timeout=60).json()["items"]
    assert len(codes) == 1

    # "Shared by me" lists it; Revoke there deletes the hub's share code
    page.goto(f"{hub.url}/services/civis/shares/mine")
    entry = page.locator(".share-entry", has_text="pairing")
    expect(entry.locator(".share-kind")).to_have_text("live")
    page.once("dialog", lambda d: d.accept())
    entry.locator("button.revoke").click()
    expect(page.locator(".share-entry", has_text="pairing").locator(".share-state")).to_have_text(
        "revoked"
    )
    assert api.get(f"{hub.url}/hub/api/share-codes/{owner}/pairlab", timeout=60).json()["items"] == []
