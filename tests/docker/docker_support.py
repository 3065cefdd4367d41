"""Helpers for tests/docker: the engine, the registry, the hub config, metrics."""

from __future__ import annotations

import os
import re

import docker
import pytest
import requests

REGISTRY = os.environ.get("CIVIS_IMAGE_REGISTRY", "127.0.0.1:5000")
BASE_IMAGE = f"{REGISTRY}/civis/notebook:latest"

# Config lines setting ``_gateway``: the address containers on Docker's bridge reach the host
# on. Docker 20.10 leaves IPAM's Gateway out of a restored default bridge; it is then the
# subnet's first address (docker0's).
_BRIDGE_GATEWAY = """
import ipaddress as _ipaddress
import docker as _docker
_ipam = _docker.APIClient(version="auto").inspect_network("bridge")["IPAM"]["Config"][0]
_gateway = _ipam.get("Gateway") or str(next(_ipaddress.ip_network(_ipam["Subnet"]).hosts()))
"""

DOCKER_CONFIG = f"""
{_BRIDGE_GATEWAY}c.JupyterHub.spawner_class = "civis-docker"
# containers on Docker's bridge reach the hub's API on the bridge's gateway address
c.JupyterHub.hub_ip = _gateway
c.JupyterHub.hub_connect_ip = _gateway
c.JupyterHub.authenticate_prometheus = False
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 120}}
c.Spawner.default_url = ""
c.Spawner.start_timeout = 300
c.CivisSpawner.environments = [
    {{"name": "base", "display_name": "Base", "image": {BASE_IMAGE!r}, "default": True,
      "resources": {{"mem_limit": "700M", "cpu_limit": 1.5}}}},
    {{"name": "tabulate", "display_name": "Base + tabulate", "image": {BASE_IMAGE!r},
      "packages": ["tabulate==0.9.0"]}},
]
c.CivisSpawner.allowed_images = r"{re.escape(REGISTRY)}/civis/notebook:[a-z0-9]+"
c.DockerImageBuilder.registry = {REGISTRY!r}
# this machine reaches the package index only through the host's network
c.DockerImageBuilder.network_mode = "host"
"""


KUBE_NAMESPACE = "civis-built"


def kube_config(packages_mode: str = "builder", packages=("tabulate==0.9.0",)) -> str:
    catalog = [
        {"name": "base", "display_name": "Base", "image": BASE_IMAGE, "default": True},
        {"name": "tabulate", "display_name": "Base + tabulate", "image": BASE_IMAGE,
         "packages": list(packages)},
    ]
    packages = (
        "c.CivisKubeSpawner.image_builder = True\n"
        if packages_mode == "builder"
        else 'c.CivisKubeSpawner.extra_packages = "install-on-start"\n'
    )
    return f"""
{_BRIDGE_GATEWAY}c.JupyterHub.spawner_class = "civis-kube"
c.JupyterHub.hub_ip = _gateway
c.JupyterHub.hub_connect_ip = _gateway
c.Spawner.default_url = ""
c.KubeSpawner.namespace = {KUBE_NAMESPACE!r}
c.KubeSpawner.cmd = ["jupyterhub-singleuser"]
c.KubeSpawner.k8s_api_request_timeout = 10
c.KubeSpawner.start_timeout = 300
c.CivisSpawner.environments = {catalog!r}
c.DockerImageBuilder.registry = {REGISTRY!r}
c.DockerImageBuilder.network_mode = "host"
{packages}"""


def docker_client() -> docker.APIClient:
    try:
        client = docker.APIClient(version="auto")
        client.ping()
        requests.get(f"http://{REGISTRY}/v2/", timeout=5).raise_for_status()
        client.inspect_image(BASE_IMAGE)
    except Exception as e:  # CI runs `make docker-env` first (make test depends on it)
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide the Docker engine, registry and base image: {e}")
        pytest.skip(f"no Docker engine, registry or base image here (run `make docker-env`): {e}")
    return client


def escaped(user: str) -> str:
    """A user name as DockerSpawner puts it into container and volume names."""
    from dockerspawner import DockerSpawner

    return DockerSpawner._escape(user)


def user_containers(client, user: str) -> list[dict]:
    return [c for c in client.containers(all=True) if any(escaped(user) in n for n in c["Names"])]


def remove_user_objects(client, user: str) -> None:
    """Remove what the hub left of ``user``; what is already gone, or going (the hub
    stopping a server removes its container too), is fine."""
    for c in user_containers(client, user):
        _removed(client.remove_container, c["Id"], force=True)
    for v in client.volumes().get("Volumes") or []:
        if escaped(user) in v["Name"]:
            _removed(client.remove_volume, v["Name"], force=True)


def _removed(remove, *args, **kwargs) -> None:
    try:
        remove(*args, **kwargs)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as e:
        if e.status_code != 409:  # 409: "removal ... is already in progress"
            raise


def builds(hub, outcome: str = "ok") -> float:
    """The hub's civis_image_builds_total{outcome} (its /hub/metrics)."""
    text = requests.get(f"{hub.url}/hub/metrics", timeout=30).text
    m = re.search(rf'^civis_image_builds_total{{outcome="{outcome}"}} ([0-9.e+]+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def exec_in(client, container: str, cmd: list[str]) -> tuple[int, str]:
    ex = client.exec_create(container, cmd)
    out = client.exec_start(ex).decode(errors="replace")
    return client.exec_inspect(ex)["ExitCode"], out


def registry_has(tag: str) -> bool:
    repository, label = tag.split("/", 1)[1].rsplit(":", 1)
    r = requests.get(
        f"http://{REGISTRY}/v2/{repository}/manifests/{label}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=10,
    )
    return r.status_code == 200


def environment_tag(client, packages) -> str:
    """The tag the builder gives BASE_IMAGE + ``packages`` (see image_builder.image_tag)."""
    from jupyterhub_civis.spawner.docker_builder import DockerImageBuilder
    from jupyterhub_civis.spawner.image_builder import image_tag
    from jupyterhub_civis.spawner.requirements import normalise_requirements

    digest = client.inspect_distribution(BASE_IMAGE)["Descriptor"]["digest"]
    base_ref = f"{BASE_IMAGE.rsplit(':', 1)[0]}@{digest}"
    return image_tag(REGISTRY, DockerImageBuilder().image_prefix, base_ref, normalise_requirements(packages))


def forget_image(client, tag: str) -> None:
    """Delete ``tag`` from the registry and the engine, so the next request must build it."""
    if registry_has(tag):
        digest = client.inspect_distribution(tag)["Descriptor"]["digest"]
        repository = tag.split("/", 1)[1].rsplit(":", 1)[0]
        requests.delete(f"http://{REGISTRY}/v2/{repository}/manifests/{digest}", timeout=30).raise_for_status()
    try:
        client.remove_image(tag, force=True)
    except docker.errors.NotFound:
        pass
    assert not registry_has(tag)
