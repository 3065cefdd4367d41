"""Kubernetes with an image builder, end to end: a real hub running CivisKubeSpawner
against the API emulator, the real builder/registry, and a kubelet that runs pods in
the real Docker engine. An environment with packages runs a built image, by digest,
with no install-on-start init container."""

from __future__ import annotations

import pytest
import requests
from civis_test_support import TEST_TOKEN, start_hub, stop_hub
from docker_kubelet import DockerKubelet
from docker_support import KUBE_NAMESPACE as NAMESPACE
from docker_support import REGISTRY, exec_in, kube_config
from kube_cluster import ApiServer

pytestmark = [pytest.mark.docker, pytest.mark.hub]

@pytest.fixture
def kube_cluster(tmp_path, docker_api, monkeypatch):
    api = ApiServer().start()
    kubelet = DockerKubelet(api, NAMESPACE, tmp_path / "nodes", docker_api).start()
    monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(tmp_path / "kubeconfig.yaml", NAMESPACE)))
    yield api, kubelet
    kubelet.stop()
    api.stop()


def test_pod_runs_the_built_image_without_init_container(tmp_path, kube_cluster, docker_api):
    api, kubelet = kube_cluster
    hub = start_hub(tmp_path / "hub", kube_config())
    try:
        user = hub.create_user("built")
        r, events = hub.start_and_follow(user, "nb", {"environment": "tabulate"})
        assert r.status_code in (201, 202), r.text
        hub.wait_ready(user, "nb", timeout=300)
        assert not kubelet.errors, kubelet.errors
        [pod] = [p for p in api.list("pods", NAMESPACE) if p["metadata"]["name"] in kubelet.processes]
        name = pod["metadata"]["name"]
        image = next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")["image"]
        assert image.startswith(f"{REGISTRY}/civis/environment@sha256:")
        assert kubelet.init_containers[name] == []
        assert exec_in(docker_api, kubelet.processes[name], ["python", "-c", "import tabulate"])[0] == 0
        answer = requests.get(f"{hub.url}/user/{user}/nb/api/status",
                              headers={"Authorization": f"token {TEST_TOKEN}"}, timeout=30)
        assert answer.status_code == 200, answer.text
        messages = [e.get("message", "") for e in events]
        assert any("Preparing the image with tabulate==0.9.0" in m for m in messages), messages
        assert not any("installed when the pod starts" in m for m in messages), messages
        hub.stop(user, "nb")
    finally:
        stop_hub(hub)

