"""``user_options`` → a validated Selection, and the spawn form → ``user_options``.

Pure policy. ``user_options`` is untrusted input (a REST body or a form), so
everything is checked: keys, types, lengths, the catalog, the image allow-list
and every requirement. Errors are ``InvalidInput`` naming the offending field,
so the hub can answer HTTP 400 starting with it.

Two request forms are accepted:

- the native form, validated by ``UserOptions`` (``extra="forbid"``)::

      {"environment": "geo", "packages": ["tabulate==0.9.0"]}
      {"environment": "gpu", "options": {"image": "pytorch"}}

- KubeSpawner's ``profile_list`` form, for clients and forms written for it::

      {"profile": "gpu", "image": "pytorch", "tag--unlisted-choice": "v2"}

  Every key but ``profile`` names an option of that profile: ``<option>``
  picks one of its choices, ``<option>--unlisted-choice`` gives a free-text
  value where the operator enabled one. It means the same as the native
  form with those keys under ``options``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement
from pydantic import (
    BaseModel,
    ConfigDict,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from jupyterhub_civis.errors import InvalidInput, from_validation_error
from jupyterhub_civis.spawner import pinning
from jupyterhub_civis.spawner.catalog import Catalog, Environment
from jupyterhub_civis.spawner.requirements import normalise_requirement

OPTION_KEYS = ("environment", "image", "packages", "options", "image_digest")
PROFILE_KEY = "profile"
UNLISTED_SUFFIX = "--unlisted-choice"
#: what a KubeSpawner-style select posts when its free-text entry is chosen
UNLISTED_SELECTED = "unlisted-choice"
MAX_NAME_LENGTH = 63
MAX_IMAGE_LENGTH = 255
MAX_REQUIREMENT_LENGTH = 200
MAX_OPTION_VALUE_LENGTH = 255

# Docker/OCI reference grammar, loosely: [host[:port]/]path[:tag][@digest]
IMAGE_REFERENCE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@sha256:[a-f0-9]{64})?$"
)


@dataclass(frozen=True)
class Selection:
    """What a user chose for one named server.

    ``options`` are ``(key, value)`` pairs in KubeSpawner's naming
    (``image`` → a choice, ``image--unlisted-choice`` → a typed value);
    ``from_profile`` is true when the environment came from ``profile_list``.
    """

    environment: str
    image: str | None = None
    packages: tuple[str, ...] = ()
    options: tuple[tuple[str, str], ...] = ()
    from_profile: bool = False
    image_digest: str | None = None  # pinning.py: the exact image a notebook recorded

    def profile_options(self) -> dict:
        """The choice in KubeSpawner's ``user_options`` form (what its ``load_user_options`` reads)."""
        return {PROFILE_KEY: self.environment, **dict(self.options)}

    def to_user_options(self) -> dict:
        """The canonical ``user_options`` stored for the server.

        A profile_list environment chosen without a custom image or packages
        is stored in KubeSpawner's own form, so hooks written for it keep
        reading ``user_options["profile"]``; everything else in the native form.
        """
        if self.from_profile and not self.image and not self.packages and not self.image_digest:
            return self.profile_options()
        options = {"environment": self.environment}
        if self.image:
            options["image"] = self.image
        if self.packages:
            options["packages"] = list(self.packages)
        if self.options:
            options["options"] = dict(self.options)
        if self.image_digest:
            options["image_digest"] = self.image_digest
        return options


class UserOptions(BaseModel):
    """The native ``user_options`` of a request (types and lengths; the catalog is checked after)."""

    model_config = ConfigDict(extra="forbid")

    environment: StrictStr | None = None
    image: StrictStr | None = None
    packages: list[StrictStr] | None = None
    options: dict[StrictStr, StrictStr] | None = None
    image_digest: StrictStr | None = None

    @field_validator("packages")
    @classmethod
    def _requirements(cls, packages, info: ValidationInfo):
        if packages is None:
            return None
        context = info.context or {}
        limit = context.get("max_packages", 30)
        if len(packages) > limit:
            raise ValueError(f"at most {limit} packages may be added")
        normalised = set()
        for index, text in enumerate(packages):
            normalised.add(_requirement(index, text, context.get("allow_urls", False)))
        return sorted(normalised)


class _ItemError(ValueError):
    """An error about one item of a list, carrying its index (re-raised as ``packages[i]``)."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


def _requirement(index: int, text: str, allow_urls: bool) -> str:
    if len(text) > MAX_REQUIREMENT_LENGTH:
        raise _ItemError(index, f"longer than {MAX_REQUIREMENT_LENGTH} characters")
    try:
        return normalise_requirement(text, allow_urls=allow_urls)
    except InvalidRequirement as e:
        # packaging's message ends with the text and a caret line under it: keep the sentence
        reason = str(e).splitlines()[0][:200]
        raise _ItemError(
            index, f"not a valid requirement ({reason}); write e.g. 'tabulate>=0.9'"
        ) from None


def _describe(error: dict) -> str | None:
    field = error["loc"][0] if error["loc"] else ""
    if field == "environment" and error["type"] == "string_type":
        return "must be a string naming a catalog environment"
    if field == "packages" and len(error["loc"]) == 1 and error["type"] == "list_type":
        return "must be a list of requirement strings"
    if field == "options" and len(error["loc"]) == 1 and error["type"] == "dict_type":
        return "must be an object of option names and values"
    if error["type"] == "string_type":
        return "must be a string"
    return None


def _validate_native(raw: dict, context: dict) -> UserOptions:
    try:
        return UserOptions.model_validate(raw, context=context)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        cause = first.get("ctx", {}).get("error")
        if isinstance(cause, _ItemError):
            raise InvalidInput(f"packages[{cause.index}]", str(cause)) from None
        if first["type"] == "extra_forbidden":
            shown = str(first["loc"][0])[:40]
            raise InvalidInput(
                shown, f"unknown option {shown!r}; allowed options are {list(OPTION_KEYS)}"
            ) from None
        raise from_validation_error(e, describe=_describe) from None


def parse_user_options(
    raw,
    catalog: Catalog,
    *,
    allowed_images: re.Pattern | None = None,
    max_packages: int = 30,
    allow_direct_references: bool = False,
    runs_images: bool = True,
) -> Selection:
    """Validate untrusted ``user_options`` (native or profile form) against the catalog and policy."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidInput("user_options", "must be a JSON object")
    option_prefix = "options."
    if PROFILE_KEY in raw:
        raw, option_prefix = _from_profile_form(raw), ""
    model = _validate_native(
        raw, {"max_packages": max_packages, "allow_urls": allow_direct_references}
    )

    name = model.environment
    if not name:
        environment = catalog.default
    else:
        environment = catalog.get(name) if len(name) <= MAX_NAME_LENGTH else None
        if environment is None:
            field = "environment" if option_prefix else PROFILE_KEY
            raise InvalidInput(
                field,
                f"{name[:MAX_NAME_LENGTH]!r} is not offered here; choose one of {catalog.names()}",
            )
    image_digest = pinning.check_reference(model.image_digest)
    if image_digest and not runs_images:
        raise InvalidInput(
            pinning.FIELD,
            "servers here do not run container images; open it without a pinned image",
        )
    return Selection(
        environment=environment.name,
        image_digest=image_digest,
        image=_check_image(model.image, allowed_images),
        packages=tuple(model.packages or ()),
        options=check_environment_options(environment, model.options or {}, option_prefix),
        from_profile=environment.source == "profile_list",
    )


def _from_profile_form(raw: dict) -> dict:
    profile = raw[PROFILE_KEY]
    if not isinstance(profile, str):
        raise InvalidInput(PROFILE_KEY, "must be a string naming a profile")
    options = {}
    for key, value in raw.items():
        if key == PROFILE_KEY:
            continue
        if not isinstance(value, str):
            raise InvalidInput(str(key)[:40], "must be a string")
        options[key] = value
    return {"environment": profile, "options": options}


def check_environment_options(
    environment: Environment, given: dict[str, str], prefix: str = "options."
) -> tuple[tuple[str, str], ...]:
    """Validate option keys and values against the environment's options.

    Returns the chosen ``(key, value)`` pairs in the environment's option
    order; an option not given keeps its default choice (not stored).
    """
    known = {o.name for o in environment.options}
    for key in given:
        option = key.removesuffix(UNLISTED_SUFFIX)
        if option not in known:
            offered = sorted(known) if known else "none"
            raise InvalidInput(
                f"{prefix}{key}"[:60],
                f"not an option of {environment.name!r}; its options: {offered}",
            )
    chosen = []
    for option in environment.options:
        typed = given.get(option.name + UNLISTED_SUFFIX)
        choice = given.get(option.name)
        if typed:
            chosen.append((option.name + UNLISTED_SUFFIX, _check_unlisted(option, typed, prefix)))
        elif choice:
            if option.choice(choice) is None:
                raise InvalidInput(
                    f"{prefix}{option.name}",
                    f"{choice[:40]!r} is not a choice here; choose one of "
                    f"{[c.name for c in option.choices]}",
                )
            chosen.append((option.name, choice))
        elif option.default is None:
            raise InvalidInput(
                f"{prefix}{option.name}{UNLISTED_SUFFIX}",
                f"{option.display_name or option.name} needs a value",
            )
    return tuple(chosen)


def _check_unlisted(option, value: str, prefix: str) -> str:
    field = f"{prefix}{option.name}{UNLISTED_SUFFIX}"
    if option.unlisted is None:
        raise InvalidInput(field, f"free-text values are not enabled for {option.name!r}")
    if len(value) > MAX_OPTION_VALUE_LENGTH:
        raise InvalidInput(field, f"longer than {MAX_OPTION_VALUE_LENGTH} characters")
    regex = option.unlisted.validation_regex
    # re.match, as KubeSpawner does: operators anchor their patterns as they intend
    if regex and not re.match(regex, value):
        raise InvalidInput(
            field,
            f"{value[:80]!r}: {option.unlisted.validation_message or f'must match {regex!r}'}",
        )
    return value


def _check_image(image, allowed_images: re.Pattern | None) -> str | None:
    if image is None or image == "":
        return None
    if allowed_images is None:
        raise InvalidInput(
            "image", "custom images are disabled on this hub; choose a catalog environment"
        )
    if len(image) > MAX_IMAGE_LENGTH or not IMAGE_REFERENCE.match(image):
        raise InvalidInput("image", f"{image[:80]!r} is not a valid image reference")
    if not allowed_images.fullmatch(image):
        raise InvalidInput(
            "image",
            f"{image!r} is not allowed here; allowed images match {allowed_images.pattern!r}",
        )
    return image


def environment_name(user_options: dict) -> str | None:
    """The environment named by stored ``user_options`` of either form."""
    return user_options.get("environment") or user_options.get(PROFILE_KEY)


def chosen_options(user_options: dict) -> dict:
    """The option choices in stored ``user_options`` of either form."""
    if PROFILE_KEY in user_options:
        return {k: v for k, v in user_options.items() if k != PROFILE_KEY}
    return dict(user_options.get("options") or {})


# ----- the spawn form ----------------------------------------------------------------


def package_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, requirement)`` for each requirement in the form's packages box.

    One requirement per line; blank lines and ``#`` comments are dropped. The
    line numbers let errors speak in the form's terms ("line 2: …").
    """
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            found.append((number, stripped))
    return found


def options_from_form(formdata: dict[str, list[str]]) -> dict:
    """Turn the spawn page's form fields into ``user_options``.

    The bundle's form posts ``environment``, ``image``, ``packages`` and
    ``profile-option-<environment>--<option>`` fields; a form written for
    KubeSpawner posts ``profile`` instead of ``environment`` and gets
    KubeSpawner's ``user_options`` form back.
    """
    profile = _first(formdata, PROFILE_KEY)
    environment = profile or _first(formdata, "environment")
    choices = _form_choices(formdata, environment) if environment else {}
    if profile:
        return {PROFILE_KEY: profile, **choices}
    options = {}
    if environment:
        options["environment"] = environment
    image = _first(formdata, "image")
    if image:
        options["image"] = image
    packages = [text for _, text in package_lines(_first(formdata, "packages"))]
    if packages:
        options["packages"] = packages
    if choices:
        options["options"] = choices
    return options


def _form_choices(formdata: dict, environment: str) -> dict:
    """``profile-option-<environment>--<option>`` fields → ``{option: choice}`` or typed values."""
    prefix = f"profile-option-{environment}--"
    selects, typed = {}, {}
    for key in formdata:
        if not key.startswith(prefix):
            continue
        name = key[len(prefix) :]
        value = _first(formdata, key)
        if name.endswith(UNLISTED_SUFFIX):
            typed[name.removesuffix(UNLISTED_SUFFIX)] = value
        else:
            selects[name] = value
    chosen = {}
    for name in dict.fromkeys([*selects, *typed]):
        select = selects.get(name)
        if select and select != UNLISTED_SELECTED:
            chosen[name] = select
        elif typed.get(name):
            chosen[name + UNLISTED_SUFFIX] = typed[name]
    return chosen


def _first(formdata: dict, key: str) -> str:
    values = formdata.get(key) or [""]
    return values[0].strip() if isinstance(values[0], str) else ""
