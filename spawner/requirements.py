"""Pip requirement strings: validation, normalisation and content ids."""

from __future__ import annotations

import hashlib
import json

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name


def normalise_requirement(text: str, *, allow_urls: bool = False) -> str:
    """Return the canonical form of one PEP 508 requirement string.

    Raises InvalidRequirement with a message a person can act on. Direct URL
    references (``pkg @ https://…``, ``file:…``) are refused unless allowed:
    they would let a user make the hub fetch arbitrary URLs or read its files.
    """
    if not isinstance(text, str):
        raise InvalidRequirement(f"{text!r} is not a string")
    stripped = text.strip()
    if not stripped:
        raise InvalidRequirement("empty requirement")
    if stripped.startswith("-"):
        raise InvalidRequirement(f"{stripped!r}: pip options are not allowed, only requirements")
    req = Requirement(stripped)
    if req.url and not allow_urls:
        raise InvalidRequirement(
            f"{stripped!r}: direct URL references are not allowed; use a name and version "
            "from the package index, e.g. 'pandas>=2.2'"
        )
    req.name = canonicalize_name(req.name)
    return str(req)


def normalise_requirements(texts, *, allow_urls: bool = False) -> tuple[str, ...]:
    """Normalise, de-duplicate and sort a list of requirement strings."""
    return tuple(sorted({normalise_requirement(t, allow_urls=allow_urls) for t in texts}))


def environment_id(base_fingerprint: str, requirements) -> str:
    """Content address of a built environment: base plus sorted requirements.

    Two servers asking for the same base and the same (normalised) packages
    get the same id, hence the same built environment.
    """
    payload = json.dumps(
        {"base": base_fingerprint, "requirements": sorted(requirements)}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]
