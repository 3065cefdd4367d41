"""Helpers for the Kubernetes backend tests: build spawners without a hub, serialise
and validate the manifests they make."""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace


def _unit_kubeconfig() -> str:
    path = Path(tempfile.gettempdir()) / f"civis-kube-unit-{os.getpid()}.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: unit\n"
        "clusters: [{name: unit, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: unit, user: {token: unit}}]\n"
        "contexts: [{name: unit, context: {cluster: unit, user: unit, namespace: civis}}]\n"
    )
    return str(path)


# KubeSpawner loads a kubeconfig once per process; unit tests never connect to it.
os.environ.setdefault("KUBECONFIG", _unit_kubeconfig())

import kubernetes_validate  # noqa: E402
from kubernetes_asyncio.client import ApiClient  # noqa: E402
from traitlets.config import Config  # noqa: E402

from jupyterhub_civis.spawner.kube import CivisKubeSpawner  # noqa: E402

K8S_VERSION = "1.32"


CATALOG = [
    {"name": "python", "display_name": "Python", "image": "quay.io/jupyter/base-notebook:2025-01-06",
     "default": True},
    {"name": "scipy", "display_name": "SciPy", "image": "quay.io/jupyter/scipy-notebook:2025-01-06",
     "resources": {"cpu_limit": 2, "mem_limit": "4G", "mem_guarantee": "1G"}},
    {"name": "pytorch-gpu", "display_name": "PyTorch (GPU)",
     "image": "quay.io/jupyter/pytorch-notebook@sha256:" + "a" * 64},
    {"name": "nightly", "display_name": "Nightly", "image": "registry.example.com/team/nb:latest"},
]

_api = ApiClient.__new__(ApiClient)  # only its serialiser is used: no connection, no loop


def to_dict(obj) -> dict:
    """A kubernetes_asyncio model (or dict) as the JSON the API server receives."""
    return _api.sanitize_for_serialization(obj)


def validate(manifest: dict) -> None:
    """Strict validation against the Kubernetes 1.32 OpenAPI schema (raises on any error)."""
    kubernetes_validate.validate(manifest, desired_version=K8S_VERSION, strict=True)


def chart_config(**overrides) -> Config:
    """Config shaped as the z2jh chart's hub.config / jupyterhub_config.py sets it
    (chart 4.x defaults, storage type dynamic), plus the bundle's settings."""
    c = Config()
    ks = c.KubeSpawner
    ks.common_labels = {"app": "jupyterhub", "heritage": "jupyterhub", "release": "jhub",
                        "chart": "jupyterhub-4.2.0"}
    ks.namespace = "civis"
    ks.image = "quay.io/jupyterhub/k8s-singleuser-sample:4.2.0"
    ks.image_pull_policy = "Always"
    ks.events_enabled = True
    ks.extra_labels = {"hub.jupyter.org/network-access-hub": "true"}
    ks.uid = 1000
    ks.fs_gid = 100
    ks.storage_extra_labels = {}
    ks.tolerations = [
        {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
        {"key": "hub.jupyter.org_dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
    ]
    ks.node_selector = {"pool": "users"}
    ks.node_affinity_preferred = [{"weight": 100, "preference": {"matchExpressions": [
        {"key": "hub.jupyter.org/node-purpose", "operator": "In", "values": ["user"]}]}}]
    ks.mem_limit = "1G"
    ks.mem_guarantee = "1G"
    ks.cpu_limit = None
    ks.environment = {"CHART_VAR": "from-chart"}
    ks.scheduler_name = "jhub-user-scheduler"
    ks.priority_class_name = "jhub-default-priority"
    ks.pvc_name_template = "claim-{user_server}"
    ks.storage_pvc_ensure = True
    ks.storage_access_modes = ["ReadWriteOnce"]
    ks.storage_capacity = "10Gi"
    ks.volumes = {"volume-{user_server}": {"name": "volume-{user_server}",
                                           "persistentVolumeClaim": {"claimName": "{pvc_name}"}}}
    ks.volume_mounts = {"volume-{user_server}": {"mountPath": "/home/jovyan",
                                                 "name": "volume-{user_server}"}}
    ks.init_containers = [{
        "name": "block-cloud-metadata", "image": "quay.io/jupyterhub/k8s-network-tools:4.2.0",
        "command": ["iptables", "-A", "OUTPUT", "-d", "169.254.169.254", "-j", "DROP"],
        "securityContext": {"privileged": True, "runAsUser": 0, "capabilities": {"add": ["NET_ADMIN"]}},
    }]
    c.Spawner.cmd = ["jupyterhub-singleuser"]
    c.Spawner.default_url = "/lab"
    c.CivisSpawner.environments = copy.deepcopy(CATALOG)
    for section, values in overrides.items():
        for key, value in values.items():
            setattr(c[section], key, value)
    return c


class FakeUser(SimpleNamespace):
    def __init__(self, name="alice"):
        super().__init__(name=name, id=7, url=f"/user/{name}/", escaped_name=name)


def make_spawner(config: Config | None = None, *, user="alice", server="work", user_options=None):
    """A CivisKubeSpawner as the hub would build it (call inside a running event loop)."""
    spawner = CivisKubeSpawner(
        config=config if config is not None else chart_config(),
        user=FakeUser(user),
        orm_spawner=SimpleNamespace(name=server, user_options={}, server=None),
        _mock=True,
    )
    spawner.user_options = copy.deepcopy(user_options) if user_options is not None else {}
    spawner.api_token = "secret-token"
    return spawner


async def pod_for(spawner) -> dict:
    """Run the spawn steps before the API call and return the pod KubeSpawner would create."""
    await spawner.apply_user_options(spawner, spawner.user_options)
    (selection, environment), spawner._resolved = spawner._resolved, None
    spawner.apply_resources(environment)
    spawner.environment_record = await spawner.prepare_environment(environment, selection, lambda *a: None)
    await spawner.load_user_options()  # as KubeSpawner.start() calls it
    pod = await spawner.get_pod_manifest()
    if spawner.modify_pod_hook:
        pod = spawner.modify_pod_hook(spawner, pod)
    return to_dict(pod)
