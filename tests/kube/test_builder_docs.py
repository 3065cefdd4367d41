"""The image builder deployment in docs/kubernetes.md: manifests valid for Kubernetes, and
the hub values load into a catalog the Kubernetes backend accepts with packages."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from traitlets.config import Config

from jupyterhub_civis.spawner.catalog import CatalogError
from jupyterhub_civis.spawner.kube_config import check_kube_config

ROOT = Path(__file__).resolve().parents[2]


def _blocks() -> list[dict]:
    text = (ROOT / "docs" / "kubernetes.md").read_text()
    section = text.split("## Image builder: environments with packages", 1)[1].split("\n## ", 1)[0]
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", section, re.S)]


def test_builder_manifests_are_valid_and_only_the_hub_reaches_the_daemon():
    *manifests, values = _blocks()
    kinds = {m["kind"]: m for m in manifests}
    assert set(kinds) == {"Deployment", "Service", "NetworkPolicy"}
    for manifest in manifests:
        kubernetes_validate.validate(manifest, desired_version="1.32", strict=True)
    port = kinds["Service"]["spec"]["ports"][0]["port"]
    policy = kinds["NetworkPolicy"]["spec"]
    assert policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"] == {
        "app": "jupyterhub", "component": "hub"}
    assert policy["podSelector"]["matchLabels"] == kinds["Deployment"]["spec"]["selector"]["matchLabels"]
    assert f":{port}" in values["hub"]["config"]["DockerImageBuilder"]["docker_url"]


def test_builder_values_make_packages_a_valid_kubernetes_catalog():
    values = _blocks()[-1]
    config = Config(values["hub"]["config"])
    catalog = check_kube_config(config)
    assert catalog.get("geo").packages
    config.CivisKubeSpawner.image_builder = False
    with pytest.raises(CatalogError, match="image builder"):
        check_kube_config(config)
