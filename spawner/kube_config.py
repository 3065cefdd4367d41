"""The Kubernetes catalog as a traitlets config describes it, without a Kubernetes client.

``CivisKubeSpawner`` builds a Kubernetes API client when constructed, so the
operator commands (``check-config``, ``prepuller``) and the config checks
read the catalog through a stand-in class that has only the Civis settings:
``CivisSpawner.environments``, a static ``KubeSpawner.profile_list`` (a
callable one is evaluated per spawn) and ``KubeSpawner.image`` for the
default environment.
"""

from __future__ import annotations

import copy

from traitlets.config import Config

from jupyterhub_civis.spawner.base import CivisSpawner
from jupyterhub_civis.spawner.catalog import Catalog
from jupyterhub_civis.spawner.profiles import environments_from_profiles

CLASS_NAME = "CivisKubeSpawner"


def config_value(config: Config, name: str):
    """A KubeSpawner setting as a ``CivisKubeSpawner`` would see it in ``config``."""
    for section in (CLASS_NAME, "KubeSpawner"):
        if name in config.get(section, {}):
            return config[section][name]
    return None


def default_environment(image: str | None) -> list[dict]:
    """With neither a catalog nor a profile_list: one environment running the configured image."""
    if not image:
        return []
    return [{"name": "default", "display_name": "Default", "image": image, "default": True}]


def settings_view(config: Config) -> CivisSpawner:
    """The Civis settings of ``config`` as a ``CivisKubeSpawner`` would see them."""
    profile_list = config_value(config, "profile_list")
    image = config_value(config, "image")
    view = type(
        CLASS_NAME,
        (CivisSpawner,),
        {
            "requires_image": True,
            "default_environments": lambda self: default_environment(image),
            "extra_environments": lambda self: []
            if callable(profile_list)
            else environments_from_profiles(
                profile_list, default_image=image, auto_default=not self.environments
            ),
        },
    )
    known = set(CivisSpawner.class_trait_names(config=True))
    config = copy.deepcopy(config)
    section = config.get(CLASS_NAME, {})
    for key in [k for k in section if k not in known]:
        del section[key]  # Kubernetes settings: not the view's to read
    return view(config=config)


def catalog_from_config(config: Config) -> Catalog:
    """The catalog a ``CivisKubeSpawner`` would offer with ``config`` (static sources)."""
    return settings_view(config).catalog


def check_kube_config(config: Config, class_name: str = CLASS_NAME) -> Catalog:
    """Validate the catalog and the Kubernetes settings of ``config``; log mutable-tag warnings."""
    import logging

    from jupyterhub_civis.spawner.catalog import CatalogError
    from jupyterhub_civis.spawner.kube_policy import (
        MUTABLE_TAGS,
        check_pod_settings,
        mutable_image_warnings,
    )

    catalog = settings_view(config).catalog
    own = config.get(class_name, {})
    check_pod_settings(dict(own.get("environment_pod_settings", {})), set(catalog.names()))
    if own.get("extra_packages", "reject") == "reject" and not own.get("image_builder"):
        with_packages = [env.name for env in catalog.environments if env.packages]
        if with_packages:
            raise CatalogError(
                f"CivisSpawner.environments {with_packages}: catalog packages need "
                'c.CivisKubeSpawner.extra_packages = "install-on-start" on Kubernetes, '
                "an image builder (c.CivisKubeSpawner.image_builder = True), "
                "or an image that already has them"
            )
    tags = own.get("mutable_image_tags", sorted(MUTABLE_TAGS))
    log = logging.getLogger("JupyterHub")
    for warning in mutable_image_warnings(
        [(env.name, env.image) for env in catalog.environments], frozenset(tags)
    ):
        log.warning("CivisKubeSpawner: %s", warning)
    return catalog
