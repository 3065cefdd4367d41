"""`jupyterhub-civis prepuller --build`: the catalog's built images, by digest, in the
z2jh values and the DaemonSet (validated like the other manifests)."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import kubernetes_validate
import pytest
import yaml
from docker_support import BASE_IMAGE, REGISTRY

from jupyterhub_civis.cli import main

pytestmark = pytest.mark.docker


def test_prepuller_lists_built_images_by_digest(tmp_path, docker_api):
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(f"""
c.CivisSpawner.environments = [
    {{"name": "base", "image": {BASE_IMAGE!r}, "default": True}},
    {{"name": "tabulate", "image": {BASE_IMAGE!r}, "packages": ["tabulate==0.9.0"]}},
]
c.CivisKubeSpawner.image_builder = True
c.DockerImageBuilder.registry = {REGISTRY!r}
c.DockerImageBuilder.network_mode = "host"
""")
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["prepuller", str(config), "--build"]) == 0
    extra = yaml.safe_load(out.getvalue())["prePuller"]["extraImages"]
    built = extra["civis-tabulate"]
    assert built["name"] == f"{REGISTRY}/civis/environment@sha256"
    assert built["pullPolicy"] == "IfNotPresent"
    assert extra["civis-base"]["name"] == BASE_IMAGE.rsplit(":", 1)[0]
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["prepuller", str(config), "--build", "--format", "daemonset"]) == 0
    manifest = yaml.safe_load(out.getvalue())
    kubernetes_validate.validate(manifest, desired_version="1.32", strict=True)
    images = [c["image"] for c in manifest["spec"]["template"]["spec"]["initContainers"]]
    assert any(i.startswith(f"{REGISTRY}/civis/environment@sha256:") for i in images), images
    assert BASE_IMAGE in images
