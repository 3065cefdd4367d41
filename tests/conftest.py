"""Fixtures: a real JupyterHub (config/local) shared by the session's hub tests."""

import pytest
from civis_test_support import processes_under, require_tools, start_hub, stop_hub, wait_for


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    """One real JupyterHub for the session, configured by config/local."""
    require_tools()
    state = tmp_path_factory.mktemp("hub")
    hub = start_hub(state)
    yield hub
    stop_hub(hub)
    wait_for(lambda: not processes_under(state), timeout=30, message="every server to exit")
