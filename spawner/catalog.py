"""The admin catalog of environments: parsing and validation.

Pure policy: no tornado, no JupyterHub imports. A catalog entry is validated
by a pydantic model (``extra="forbid"``: a misspelt key is an error, not a
silent default); every error message names the catalog entry and the field,
and says what to do.

Entries come from ``CivisSpawner.environments`` (the native, richer form) and,
on Kubernetes, from KubeSpawner's ``profile_list`` (``profiles.py`` turns
profiles into ``Environment`` objects with ``source="profile_list"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from packaging.requirements import InvalidRequirement
from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr, ValidationError, field_validator

from jupyterhub_civis.errors import from_validation_error
from jupyterhub_civis.spawner.requirements import normalise_requirements

SLUG = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

#: Spawner traits a catalog entry may set through ``resources``.
RESOURCE_KEYS = frozenset({"cpu_limit", "cpu_guarantee", "mem_limit", "mem_guarantee"})


class CatalogError(ValueError):
    """The configured catalog cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class Choice:
    name: str
    display_name: str


@dataclass(frozen=True)
class UnlistedChoice:
    """A free-text value the operator allows for an option (KubeSpawner's ``unlisted_choice``)."""

    display_name: str = ""
    display_name_in_choices: str = "Other..."
    validation_regex: str | None = None
    validation_message: str = ""


@dataclass(frozen=True)
class EnvironmentOption:
    """A further choice inside one environment (KubeSpawner's ``profile_options``)."""

    name: str
    display_name: str
    choices: tuple[Choice, ...] = ()
    default: str | None = None
    unlisted: UnlistedChoice | None = None

    def choice(self, name: str) -> Choice | None:
        return next((c for c in self.choices if c.name == name), None)


@dataclass(frozen=True)
class Environment:
    r"""One entry of the catalog.

    ``image`` is what container backends run; ``local_prefix`` (a Python
    environment on the hub's machine, ``None`` meaning the hub's own) plus
    ``packages`` is what the local backend builds. ``source`` says where the
    entry came from: ``"catalog"`` or ``"profile_list"`` (whose ``options``
    are the profile's ``profile_options`` and ``override_keys`` the settings
    its ``kubespawner_override``\ s may change).
    """

    name: str
    display_name: str
    description: str = ""
    image: str | None = None
    local_prefix: str | None = None
    packages: tuple[str, ...] = ()
    resources: dict = field(default_factory=dict)
    default: bool = False
    options: tuple[EnvironmentOption, ...] = ()
    source: str = "catalog"
    #: spawner settings a profile_list entry may override (its own and its options')
    override_keys: tuple[str, ...] = ()

    def option(self, name: str) -> EnvironmentOption | None:
        return next((o for o in self.options if o.name == name), None)


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


class CatalogEntry(BaseModel):
    """One dict of ``CivisSpawner.environments``, as the operator writes it."""

    model_config = ConfigDict(extra="forbid")

    name: StrictStr
    display_name: StrictStr | None = None
    description: StrictStr | None = None
    image: StrictStr | None = None
    local_prefix: StrictStr | None = None
    packages: list[StrictStr] | tuple[StrictStr, ...] = ()
    resources: dict[StrictStr, Any] = {}
    default: StrictBool = False

    @field_validator("name")
    @classmethod
    def _slug(cls, name: str) -> str:
        if not SLUG.match(name):
            raise ValueError(
                f"{name!r} is not a slug; use 1-63 lowercase letters, digits and '-', "
                "starting and ending with a letter or digit (e.g. 'python-ml')"
            )
        return name

    @field_validator("packages")
    @classmethod
    def _requirements(cls, packages) -> tuple[str, ...]:
        try:
            return normalise_requirements(packages)
        except InvalidRequirement as e:
            raise ValueError(str(e).splitlines()[0]) from None

    @field_validator("resources")
    @classmethod
    def _resources(cls, resources: dict) -> dict:
        unknown = sorted(set(resources) - RESOURCE_KEYS)
        if unknown:
            raise ValueError(f"unknown resource(s) {unknown}; allowed: {sorted(RESOURCE_KEYS)}")
        return resources


_MESSAGES = {
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "dict_type": "must be a dict",
    "list_type": "must be a list of requirement strings",
    "tuple_type": "must be a list of requirement strings",
    "missing": "is required",
}


def _describe(error: dict) -> str | None:
    if error["loc"] and error["loc"][0] == "packages" and error["type"] in ("list_type", "tuple_type"):
        return _MESSAGES["list_type"]
    return _MESSAGES.get(error["type"])


def parse_entry(index: int, entry, *, require_image: bool = False) -> Environment:
    """Validate one catalog dict; ``index`` names it until its name is known."""
    if not isinstance(entry, dict):
        raise CatalogError(
            f"CivisSpawner.environments[{index}] must be a dict, got {type(entry).__name__}"
        )
    name = entry.get("name")
    where = (
        f"CivisSpawner.environments[{name!r}]"
        if isinstance(name, str) and SLUG.match(name)
        else f"CivisSpawner.environments[{index}]"
    )
    try:
        model = CatalogEntry.model_validate(entry)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        if first["type"] == "extra_forbidden":
            unknown = sorted(set(entry) - set(CatalogEntry.model_fields))
            raise CatalogError(
                f"{where}: unknown field(s) {unknown}; allowed: {sorted(CatalogEntry.model_fields)}"
            ) from None
        raise CatalogError(f"{where}: {from_validation_error(e, describe=_describe)}") from None
    if require_image and not model.image:
        raise CatalogError(
            f"{where}: this backend runs containers, so every environment needs an "
            '"image" (e.g. "quay.io/jupyter/scipy-notebook:2024-10-07")'
        )
    return Environment(
        name=model.name,
        display_name=model.display_name or model.name,
        description=model.description or "",
        image=model.image or None,
        local_prefix=model.local_prefix or None,
        packages=model.packages,
        resources=dict(model.resources),
        default=model.default,
    )


def parse_catalog(entries, *, require_image: bool = False, extra=()) -> Catalog:
    """Validate the configured list of environment dicts and build a Catalog.

    ``require_image`` is set by container backends, which cannot run an
    environment that has no image. ``extra`` are environments from another
    source (KubeSpawner's ``profile_list``), appended after the native ones;
    names must be unique across both and exactly one environment is the
    default (with a single environment, it is).
    """
    if not isinstance(entries, (list, tuple)) or (not entries and not extra):
        raise CatalogError(
            "CivisSpawner.environments must be a non-empty list of environment dicts, "
            'e.g. [{"name": "python", "display_name": "Python", "default": True}]'
        )
    environments = [
        parse_entry(index, entry, require_image=require_image) for index, entry in enumerate(entries)
    ]
    environments.extend(extra)
    seen = set()
    for env in environments:
        if env.name in seen:
            raise CatalogError(
                f"CivisSpawner.environments: the name {env.name!r} is used twice "
                "(profile_list slugs count too); every environment needs its own name"
            )
        seen.add(env.name)

    defaults = [env.name for env in environments if env.default]
    if len(environments) == 1 and not defaults:
        environments[0] = replace(environments[0], default=True)
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
