"""DockerImageBuilder against the real engine and registry: a build that runs out of time
is stopped and leaves no container, no local tag and no registry tag."""

from __future__ import annotations

import asyncio

import pytest
from docker_support import BASE_IMAGE, REGISTRY, registry_has
from traitlets.config import Config

from jupyterhub_civis.spawner.docker_builder import BUILD_LABEL, DockerImageBuilder
from jupyterhub_civis.spawner.image_builder import ImageBuildError, image_tag

pytestmark = pytest.mark.docker


def test_a_build_past_its_timeout_is_stopped_and_leaves_nothing(docker_api):
    config = Config()
    config.DockerImageBuilder.registry = REGISTRY
    config.DockerImageBuilder.network_mode = "host"
    config.DockerImageBuilder.build_timeout = 1.0
    builder = DockerImageBuilder(config=config)
    packages = ["pandas==2.2.3", "pyarrow==18.1.0"]  # tens of MB: not installed within a second
    lines = []
    with pytest.raises(ImageBuildError, match="took longer than 1 s and was stopped"):
        asyncio.run(builder.ensure(BASE_IMAGE, packages, lines.append))
    base_ref = asyncio.run(builder.resolve_base(BASE_IMAGE))
    tag = image_tag(REGISTRY, builder.image_prefix, base_ref, packages)
    assert any(line.startswith("Building image") for line in lines), lines
    assert not registry_has(tag)
    assert not [i for i in docker_api.images() if tag in (i.get("RepoTags") or [])]
    assert not docker_api.containers(all=True, filters={"label": f"{BUILD_LABEL}={tag}"})
