"""KubeSpawner's ``profile_list`` as a source of catalog environments.

Zero-to-JupyterHub hubs offer choices with ``singleuser.profileList``
(``KubeSpawner.profile_list``). Each profile becomes an ``Environment`` with
``source="profile_list"``: its slug is the environment's name, its
``profile_options`` are the environment's ``options``, its image is the
``image`` its ``kubespawner_override`` sets (else the spawner's configured
image). Applying a profile (its ``kubespawner_override`` and those of the
chosen options) stays KubeSpawner's own job.

Profiles are read as KubeSpawner 7.x reads them: a list, or a dict whose
values are the profiles in the order of their keys; a missing ``slug`` comes
from ``display_name``; an option with choices but no default defaults to its
first choice; with no default profile the first is the default. Keys this
module does not know (e.g. ones a custom form template uses) are ignored, as
KubeSpawner ignores them.

Pure policy: no tornado or kubernetes imports (``python-slugify`` comes with
KubeSpawner).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from jupyterhub_civis.errors import from_validation_error
from jupyterhub_civis.spawner.catalog import (
    CatalogError,
    Choice,
    Environment,
    EnvironmentOption,
    UnlistedChoice,
)

WHERE = "KubeSpawner.profile_list"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True)


class ProfileChoice(_Lenient):
    display_name: str = ""
    default: bool = False
    kubespawner_override: dict[str, Any] = {}


class ProfileUnlistedChoice(_Lenient):
    enabled: bool = False
    display_name: str = ""
    display_name_in_choices: str = "Other..."
    validation_regex: str | None = None
    validation_message: str = ""
    kubespawner_override: dict[str, Any] = {}

    @field_validator("validation_regex")
    @classmethod
    def _compiles(cls, regex):
        if regex:
            try:
                re.compile(regex)
            except re.error as e:
                raise ValueError(f"not a valid regular expression ({e})") from None
        return regex


class ProfileOptionEntry(_Lenient):
    display_name: str = ""
    choices: dict[str, ProfileChoice] = {}
    unlisted_choice: ProfileUnlistedChoice = ProfileUnlistedChoice()


class Profile(_Lenient):
    """One profile as KubeSpawner 7.x documents it."""

    display_name: str = ""
    slug: str | None = None
    description: str = ""
    default: bool = False
    kubespawner_override: dict[str, Any] = {}
    profile_options: dict[str, ProfileOptionEntry] = {}


def profile_entries(profile_list) -> list[tuple[str, dict]]:
    """``(where, profile dict)`` in KubeSpawner's order: list order, or dict key order."""
    if isinstance(profile_list, dict):
        return [(f"{WHERE}[{key!r}]", profile_list[key]) for key in sorted(profile_list)]
    if isinstance(profile_list, (list, tuple)):
        return [(f"{WHERE}[{index}]", entry) for index, entry in enumerate(profile_list)]
    raise CatalogError(f"{WHERE} must be a list or a dict of profiles (or a callable returning one)")


def parse_profiles(profile_list, *, auto_default: bool = True) -> list[Profile]:
    """Validate profiles and fill in what KubeSpawner fills in (slugs, defaults).

    ``auto_default=False`` (the native catalog has the default) leaves
    profiles without ``default: true`` as they are.
    """
    from slugify import slugify  # KubeSpawner's own dependency, and its slug rule

    profiles = []
    for where, entry in profile_entries(profile_list or []):
        if not isinstance(entry, dict):
            raise CatalogError(f"{where} must be a dict, got {type(entry).__name__}")
        try:
            profile = Profile.model_validate(entry)
        except ValidationError as e:
            raise CatalogError(f"{where}: {from_validation_error(e)}") from None
        if not profile.slug:
            profile.slug = slugify(profile.display_name)
        if not profile.slug:
            raise CatalogError(
                f"{where}: give it a slug (a display_name with letters or digits makes one)"
            )
        for option in profile.profile_options.values():
            if option.choices and not any(c.default for c in option.choices.values()):
                next(iter(option.choices.values())).default = True
        profiles.append(profile)
    if auto_default and profiles and not any(p.default for p in profiles):
        profiles[0].default = True
    return profiles


def profile_image(profile: Profile, default_image: str | None) -> str | None:
    """The image a profile runs when known before it is applied (a plain string override)."""
    image = profile.kubespawner_override.get("image")
    return image if isinstance(image, str) and "{" not in image else default_image


def environments_from_profiles(
    profile_list, *, default_image: str | None, auto_default: bool = True
) -> list[Environment]:
    """Catalog environments for a ``profile_list`` (empty for an empty or missing list).

    With ``auto_default`` (no native catalog beside it) the first profile is
    the default when none says so, as in KubeSpawner.
    """
    environments = []
    for profile in parse_profiles(profile_list, auto_default=auto_default):
        environments.append(
            Environment(
                name=profile.slug,
                display_name=profile.display_name or profile.slug,
                description=profile.description,
                image=profile_image(profile, default_image),
                default=profile.default,
                options=tuple(
                    _option(name, option) for name, option in profile.profile_options.items()
                ),
                source="profile_list",
                override_keys=_override_keys(profile),
            )
        )
    return environments


def _option(name: str, option: ProfileOptionEntry) -> EnvironmentOption:
    unlisted = option.unlisted_choice
    return EnvironmentOption(
        name=name,
        display_name=option.display_name or name,
        choices=tuple(Choice(key, c.display_name or key) for key, c in option.choices.items()),
        default=next((key for key, c in option.choices.items() if c.default), None),
        unlisted=UnlistedChoice(
            display_name=unlisted.display_name or option.display_name or name,
            display_name_in_choices=unlisted.display_name_in_choices,
            validation_regex=unlisted.validation_regex or None,
            validation_message=unlisted.validation_message,
        )
        if unlisted.enabled
        else None,
    )


def _override_keys(profile: Profile) -> tuple[str, ...]:
    keys = set(profile.kubespawner_override)
    for option in profile.profile_options.values():
        keys.update(option.unlisted_choice.kubespawner_override)
        for choice in option.choices.values():
            keys.update(choice.kubespawner_override)
    return tuple(sorted(keys))
