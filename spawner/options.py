"""``user_options`` → a validated Selection, and the spawn form → ``user_options``.

Pure policy. ``user_options`` is untrusted input (a REST body or a form), so
everything is checked: keys, types, lengths, the catalog, the image allow-list
and every requirement. Errors carry the offending field so the hub can answer
HTTP 400 naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement

from jupyterhub_civis.errors import InvalidInput
from jupyterhub_civis.spawner.catalog import Catalog
from jupyterhub_civis.spawner.requirements import normalise_requirement

OPTION_KEYS = ("environment", "image", "packages")
MAX_NAME_LENGTH = 63
MAX_IMAGE_LENGTH = 255
MAX_REQUIREMENT_LENGTH = 200

# Docker/OCI reference grammar, loosely: [host[:port]/]path[:tag][@digest]
IMAGE_REFERENCE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@sha256:[a-f0-9]{64})?$"
)

# What a named server may be called when its name becomes a folder or a pod name.
SERVER_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,62})?$")


@dataclass(frozen=True)
class Selection:
    """What a user chose for one named server."""

    environment: str
    image: str | None = None
    packages: tuple[str, ...] = ()

    def to_user_options(self) -> dict:
        options = {"environment": self.environment}
        if self.image:
            options["image"] = self.image
        if self.packages:
            options["packages"] = list(self.packages)
        return options


def check_server_name(name: str) -> None:
    """Refuse server names that could escape a folder or break a resource name."""
    if name and (not SERVER_NAME.match(name) or name in {".", ".."} or ".." in name):
        raise InvalidInput(
            "server_name",
            f"{name[:80]!r} cannot be used; name servers with letters, digits, '.', '_' "
            "and '-' (at most 63 characters, starting with a letter or digit)",
        )


def parse_user_options(
    raw,
    catalog: Catalog,
    *,
    allowed_images: re.Pattern | None = None,
    max_packages: int = 30,
    allow_direct_references: bool = False,
) -> Selection:
    """Validate untrusted ``user_options`` against the catalog and policy."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidInput("user_options", "must be a JSON object")
    unknown = [k for k in raw if k not in OPTION_KEYS]
    if unknown:
        shown = str(unknown[0])[:40]
        raise InvalidInput(
            shown, f"unknown option {shown!r}; allowed options are {list(OPTION_KEYS)}"
        )

    name = raw.get("environment")
    if name is None or name == "":
        environment = catalog.default
    else:
        if not isinstance(name, str):
            raise InvalidInput("environment", "must be a string naming a catalog environment")
        environment = catalog.get(name) if len(name) <= MAX_NAME_LENGTH else None
        if environment is None:
            raise InvalidInput(
                "environment",
                f"{name[:MAX_NAME_LENGTH]!r} is not offered here; choose one of {catalog.names()}",
            )

    image = _parse_image(raw.get("image"), allowed_images)
    packages = _parse_packages(
        raw.get("packages"), max_packages=max_packages, allow_urls=allow_direct_references
    )
    return Selection(environment=environment.name, image=image, packages=packages)


def _parse_image(image, allowed_images: re.Pattern | None) -> str | None:
    if image is None or image == "":
        return None
    if not isinstance(image, str):
        raise InvalidInput("image", "must be a string")
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


def _parse_packages(packages, *, max_packages: int, allow_urls: bool) -> tuple[str, ...]:
    if packages is None:
        return ()
    if not isinstance(packages, list):
        raise InvalidInput("packages", "must be a list of requirement strings")
    if len(packages) > max_packages:
        raise InvalidInput("packages", f"at most {max_packages} packages may be added")
    normalised = set()
    for index, text in enumerate(packages):
        if not isinstance(text, str):
            raise InvalidInput(f"packages[{index}]", "must be a string")
        if len(text) > MAX_REQUIREMENT_LENGTH:
            raise InvalidInput(
                f"packages[{index}]", f"longer than {MAX_REQUIREMENT_LENGTH} characters"
            )
        try:
            normalised.add(normalise_requirement(text, allow_urls=allow_urls))
        except InvalidRequirement as e:
            raise InvalidInput(
                f"packages[{index}]",
                f"not a valid requirement ({str(e)[:200]}); write e.g. 'tabulate>=0.9'",
            ) from None
    return tuple(sorted(normalised))


def options_from_form(formdata: dict[str, list[str]]) -> dict:
    """Turn the spawn page's form fields into ``user_options``.

    One requirement per line; blank lines and ``#`` comments are dropped.
    """
    options = {}
    environment = _first(formdata, "environment")
    if environment:
        options["environment"] = environment
    image = _first(formdata, "image")
    if image:
        options["image"] = image
    lines = _first(formdata, "packages").splitlines()
    packages = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if packages:
        options["packages"] = packages
    return options


def _first(formdata: dict, key: str) -> str:
    values = formdata.get(key) or [""]
    return values[0].strip()
