"""Pre-pull every catalog image on every user node, from the catalog itself.

``jupyterhub-civis prepuller SOURCE`` reads the environment catalog from a
``jupyterhub_config.py`` or from a z2jh values file (``hub.config``) and prints

- ``--format values``: a values file fragment for the z2jh chart
  (``prePuller.extraImages``), to pass to ``helm upgrade`` with ``-f``; the
  chart's hook and continuous image pullers then pull them;
- ``--format daemonset``: a standalone DaemonSet manifest for installs without
  the chart (``kubectl apply -f -``). Its pod template carries a checksum of
  the image list, so applying it again after the catalog changed rolls the
  DaemonSet and every node pulls the new images.

No Kubernetes client is needed; the output is plain YAML.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

from jupyterhub_civis.spawner.catalog import Catalog
from jupyterhub_civis.spawner.kube_config import catalog_from_config
from jupyterhub_civis.spawner.kube_policy import is_pinned, split_image

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
USER_NODE_TOLERATIONS = [
    {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
    {"key": "hub.jupyter.org_dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
]
_SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 65534,
    "runAsGroup": 65534,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
_RESOURCES = {"requests": {"cpu": "0", "memory": "0"}, "limits": {"cpu": "100m", "memory": "64Mi"}}


def load_config(source: str):
    """The traitlets config of a jupyterhub_config.py, or of a z2jh values file
    (``hub.config``, ``singleuser.profileList``, ``singleuser.image``)."""
    from traitlets.config import Config, PyFileConfigLoader

    if source.endswith((".yaml", ".yml")):
        import yaml

        with open(source) as f:
            values = yaml.safe_load(f) or {}
        config = Config(((values.get("hub") or {}).get("config")) or {})
        # what the chart turns into KubeSpawner settings: singleuser.profileList and .image
        singleuser = values.get("singleuser") or {}
        if singleuser.get("profileList"):
            config.KubeSpawner.profile_list = singleuser["profileList"]
        image = singleuser.get("image") or {}
        if image.get("name"):
            config.KubeSpawner.image = f"{image['name']}:{image.get('tag') or 'latest'}"
        return config
    loader = PyFileConfigLoader(os.path.basename(source), path=os.path.dirname(os.path.abspath(source)))
    return loader.load_config()


def load_catalog(source: str) -> Catalog:
    """Catalog from a jupyterhub_config.py or a z2jh values file (see ``load_config``)."""
    return catalog_from_config(load_config(source))


def with_built_images(catalog: Catalog, config) -> Catalog:
    """The catalog with every environment that has packages pointing at its built image,
    by digest, as ``CivisKubeSpawner.image_builder`` runs it (built now if missing)."""
    import asyncio
    import dataclasses

    from jupyterhub_civis.spawner.docker_builder import DockerImageBuilder
    from jupyterhub_civis.spawner.image_builder import shared_builder

    builder_class = config.get("CivisKubeSpawner", {}).get("builder_class", DockerImageBuilder)
    if isinstance(builder_class, str):
        from traitlets.utils.importstring import import_item

        builder_class = import_item(builder_class)
    builder = shared_builder(builder_class, config)

    async def built(env):
        if not (env.packages and env.image):
            return env
        image = await builder.ensure(env.image, env.packages)
        return dataclasses.replace(env, image=image.pinned, packages=())

    async def all_built():
        return [await built(env) for env in catalog.environments]

    return dataclasses.replace(catalog, environments=tuple(asyncio.run(all_built())))


def catalog_images(catalog: Catalog) -> list[tuple[str, str]]:
    """(environment name, image) for every catalog entry, duplicates dropped, in order."""
    seen, images = set(), []
    for env in catalog.environments:
        if env.image and env.image not in seen:
            seen.add(env.image)
            images.append((env.name, env.image))
    return images


def _key(name: str) -> str:
    """A DNS-label-safe key: the chart names init containers ``image-pull-<key>``."""
    key = f"civis-{name}"
    if len(key) > 40:
        key = f"{key[:31]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return key


def z2jh_values(catalog: Catalog) -> dict:
    """``prePuller.extraImages`` for the z2jh chart.

    The chart renders ``<name>:<tag>``, so digest references are split to fit:
    ``repo@sha256:abc`` becomes name ``repo@sha256``, tag ``abc``.
    """
    extra = {}
    for name, image in catalog_images(catalog):
        repository, tag, digest = split_image(image)
        if digest and tag:
            entry = {"name": repository, "tag": f"{tag}@{digest}"}
        elif digest:
            algorithm, hexdigest = digest.split(":", 1)
            entry = {"name": f"{repository}@{algorithm}", "tag": hexdigest}
        else:
            entry = {"name": repository, "tag": tag or "latest"}
        entry["pullPolicy"] = "IfNotPresent" if is_pinned(image) else "Always"
        extra[_key(name)] = entry
    return {"prePuller": {"extraImages": extra}}


def images_checksum(images) -> str:
    return hashlib.sha256(json.dumps(sorted(i for _, i in images)).encode()).hexdigest()[:16]


def daemonset_manifest(
    catalog: Catalog,
    *,
    name: str = "civis-image-puller",
    namespace: str = "jupyterhub",
    node_selector: dict | None = None,
    tolerations: list | None = None,
    pause_image: str = PAUSE_IMAGE,
) -> dict:
    """A DaemonSet whose init containers pull each catalog image on every matching node."""
    images = catalog_images(catalog)
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "image-puller",
              "app.kubernetes.io/part-of": "jupyterhub-civis"}
    init_containers = [
        {
            "name": re.sub(r"[^a-z0-9-]", "-", f"pull-{_key(env)}")[:63].rstrip("-"),
            "image": image,
            "imagePullPolicy": "IfNotPresent" if is_pinned(image) else "Always",
            "command": ["/bin/sh", "-c", "echo Pulling complete"],
            "resources": _RESOURCES,
            "securityContext": _SECURITY_CONTEXT,
        }
        for env, image in images
    ]
    spec = {
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": False,
        "tolerations": list(tolerations if tolerations is not None else USER_NODE_TOLERATIONS),
        "initContainers": init_containers,
        "containers": [{"name": "pause", "image": pause_image, "resources": _RESOURCES,
                        "securityContext": _SECURITY_CONTEXT}],
    }
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "100%"}},
            "template": {
                "metadata": {
                    "labels": dict(labels),
                    # a catalog change changes the template: the DaemonSet rolls, nodes pull
                    "annotations": {"jupyterhub-civis/images-checksum": images_checksum(images)},
                },
                "spec": spec,
            },
        },
    }


def render(catalog: Catalog, fmt: str, **daemonset_options) -> str:
    import yaml

    header = (
        "# Generated by `jupyterhub-civis prepuller` from the environment catalog; "
        "regenerate whenever the catalog changes.\n"
    )
    if fmt == "values":
        return header + yaml.safe_dump(z2jh_values(catalog), sort_keys=False)
    if fmt == "daemonset":
        return header + yaml.safe_dump(daemonset_manifest(catalog, **daemonset_options), sort_keys=False)
    raise ValueError(f"unknown format {fmt!r}")
