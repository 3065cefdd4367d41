"""A real JupyterHub with CivisDockerSpawner on the real Docker engine and registry that
``make docker-env`` starts (tests marked ``docker``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from civis_test_support import HubRun  # noqa: E402
from docker_support import DOCKER_CONFIG, docker_client, remove_user_objects  # noqa: E402


@pytest.fixture(scope="module")
def docker_api():
    return docker_client()


@pytest.fixture(scope="module")
def docker_hub(tmp_path_factory, docker_api):
    """One hub per module: the docker backend, the local registry, builds on the host network."""
    run = HubRun(tmp_path_factory.mktemp("docker-hub"), DOCKER_CONFIG)
    hub = run.start()
    hub.run = run
    hub.users = []
    try:
        yield hub
    finally:
        if run.hub is not None and run.hub.process.poll() is None:
            run.stop()
        for user in hub.users:
            remove_user_objects(docker_api, user)
