"""The admin catalog of environments: parsing and validation.

Pure policy: no tornado, no JupyterHub imports. Every error message names the
catalog entry and the field, and says what to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement

from jupyterhub_civis.spawner.requirements import normalise_requirements

SLUG = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

#: Spawner traits a catalog entry may set through ``resources``.
RESOURCE_KEYS = frozenset({"cpu_limit", "cpu_guarantee", "mem_limit", "mem_guarantee"})

ENTRY_KEYS = frozenset(
    {
        "name",
        "display_name",
        "description",
        "image",
        "local_prefix",
        "packages",
        "resources",
        "default",
    }
)


class CatalogError(ValueError):
    """The configured catalog cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class Environment:
    """One entry of the catalog.

    ``image`` is what container backends run; ``local_prefix`` (a Python
    environment on the hub's machine, ``None`` meaning the hub's own) plus
    ``packages`` is what the local backend builds.
    """

    name: str
    display_name: str
    description: str = ""
    image: str | None = None
    local_prefix: str | None = None
    packages: tuple[str, ...] = ()
    resources: dict = field(default_factory=dict)
    default: bool = False


@dataclass(frozen=True)
class Catalog:
    environments: tuple[Environment, ...]

    @property
    def default(self) -> Environment:
        return next(env for env in self.environments if env.default)

    def get(self, name: str) -> Environment | None:
        return next((env for env in self.environments if env.name == name), None)

    def names(self) -> list[str]:
        return [env.name for env in self.environments]


def parse_catalog(entries, *, require_image: bool = False) -> Catalog:
    """Validate the configured list of environment dicts and build a Catalog.

    ``require_image`` is set by container backends, which cannot run an
    environment that has no image.
    """
    if not isinstance(entries, (list, tuple)) or not entries:
        raise CatalogError(
            "CivisSpawner.environments must be a non-empty list of environment dicts, "
            'e.g. [{"name": "python", "display_name": "Python", "default": True}]'
        )
    environments = []
    seen = set()
    for index, entry in enumerate(entries):
        env = _parse_entry(index, entry, require_image=require_image)
        if env.name in seen:
            raise CatalogError(
                f"CivisSpawner.environments: the name {env.name!r} is used twice; "
                "every environment needs its own name"
            )
        seen.add(env.name)
        environments.append(env)

    defaults = [env.name for env in environments if env.default]
    if len(environments) == 1 and not defaults:
        environments[0] = _with_default(environments[0])
    elif not defaults:
        raise CatalogError(
            'CivisSpawner.environments: no environment has "default": True; '
            f"mark exactly one of {[e.name for e in environments]} as the default"
        )
    elif len(defaults) > 1:
        raise CatalogError(
            f"CivisSpawner.environments: {defaults} are all marked default; keep exactly one"
        )
    return Catalog(tuple(environments))


def _with_default(env: Environment) -> Environment:
    return Environment(**{**env.__dict__, "default": True})


def _parse_entry(index: int, entry, *, require_image: bool) -> Environment:
    where = f"CivisSpawner.environments[{index}]"
    if not isinstance(entry, dict):
        raise CatalogError(f"{where} must be a dict, got {type(entry).__name__}")
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown:
        raise CatalogError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(ENTRY_KEYS)}")

    name = entry.get("name")
    if not isinstance(name, str) or not SLUG.match(name):
        raise CatalogError(
            f"{where}: name {name!r} is not a slug; use 1-63 lowercase letters, digits "
            "and '-', starting and ending with a letter or digit (e.g. 'python-ml')"
        )
    where = f"CivisSpawner.environments[{name!r}]"

    for key in ("display_name", "description", "image", "local_prefix"):
        value = entry.get(key)
        if value is not None and not isinstance(value, str):
            raise CatalogError(f"{where}: {key} must be a string")
    image = entry.get("image") or None
    if require_image and not image:
        raise CatalogError(
            f"{where}: this backend runs containers, so every environment needs an "
            '"image" (e.g. "quay.io/jupyter/scipy-notebook:2024-10-07")'
        )

    packages = entry.get("packages", [])
    if not isinstance(packages, (list, tuple)) or not all(isinstance(p, str) for p in packages):
        raise CatalogError(f"{where}: packages must be a list of requirement strings")
    try:
        packages = normalise_requirements(packages)
    except InvalidRequirement as e:
        raise CatalogError(f"{where}: packages: {e}") from None

    resources = entry.get("resources", {})
    if not isinstance(resources, dict):
        raise CatalogError(f"{where}: resources must be a dict")
    unknown = sorted(set(resources) - RESOURCE_KEYS)
    if unknown:
        raise CatalogError(
            f"{where}: unknown resource(s) {unknown}; allowed: {sorted(RESOURCE_KEYS)}"
        )

    default = entry.get("default", False)
    if not isinstance(default, bool):
        raise CatalogError(f"{where}: default must be true or false")

    return Environment(
        name=name,
        display_name=entry.get("display_name") or name,
        description=entry.get("description") or "",
        image=image,
        local_prefix=entry.get("local_prefix") or None,
        packages=packages,
        resources=dict(resources),
        default=default,
    )
