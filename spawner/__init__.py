"""Spawners that give every named server its own environment.

``CivisSpawner`` is the environment layer (a mixin) shared by every backend;
``CivisLocalSpawner`` runs servers as local processes.
"""

from jupyterhub_civis.errors import InvalidInput
from jupyterhub_civis.spawner.base import CivisSpawner, EnvironmentUnavailable, SpawnRejected
from jupyterhub_civis.spawner.catalog import Catalog, CatalogError, Environment, parse_catalog
from jupyterhub_civis.spawner.local import CivisLocalSpawner
from jupyterhub_civis.spawner.options import Selection, parse_user_options

__all__ = [
    "Catalog",
    "CatalogError",
    "CivisLocalSpawner",
    "CivisSpawner",
    "Environment",
    "EnvironmentUnavailable",
    "InvalidInput",
    "Selection",
    "SpawnRejected",
    "parse_catalog",
    "parse_user_options",
]
