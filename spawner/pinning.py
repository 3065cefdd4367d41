"""Pinning a server to the exact image a notebook recorded: ``user_options["image_digest"]``.

Pure policy. A notebook saved on a container backend records the image it ran by
digest (``metadata.jupyterhub_civis.environment.image_digest``, ``repo@sha256:…``);
"open a copy" of a shared notebook asks for a server of the same environment
pinned to that digest. A digest is never a free-text image: it runs only when its
repository is the one the chosen catalog environment runs (so its digest names a
build of an image the operator offers), the repository the hub's own image
builder pushes environment images to, or the whole reference matches the
operator's ``allowed_images``. Anything else is refused, naming the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jupyterhub_civis.errors import InvalidInput

FIELD = "image_digest"
MAX_REFERENCE_LENGTH = 255
DIGEST_REFERENCE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"@sha256:[a-f0-9]{64}$"
)


def check_reference(value: str | None) -> str | None:
    """The reference when it is ``repository@sha256:<64 hex>`` (``None``/empty: none)."""
    if not value:
        return None
    if len(value) > MAX_REFERENCE_LENGTH or not DIGEST_REFERENCE.match(value):
        raise InvalidInput(
            FIELD, f"{value[:80]!r} is not an image pinned by digest (repository@sha256:<64 hex>)"
        )
    return value


def repository_of(image: str) -> str:
    """``host/path:tag@sha256:…`` → ``host/path``."""
    name = image.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    if ":" in last:
        last = last.rsplit(":", 1)[0]
    return f"{head}/{last}" if head else last


@dataclass(frozen=True)
class Pinned:
    """What a server pinned by digest runs: ``image`` (the digest reference) and whether
    it is an environment image the hub's builder made (its packages are in it)."""

    image: str
    built: bool = False


def pin_image(
    reference: str,
    base_image: str | None,
    *,
    environment: str,
    builder_repository: str | None = None,
    allowed_images: re.Pattern | None = None,
) -> Pinned:
    """The image a server of ``environment`` (whose image is ``base_image``) runs when
    pinned to ``reference``; ``InvalidInput`` when the operator does not allow it."""
    repository = repository_of(reference)
    if base_image and repository == repository_of(base_image):
        return Pinned(reference)
    if builder_repository and repository == builder_repository.strip("/"):
        return Pinned(reference, built=True)
    if allowed_images is not None and allowed_images.fullmatch(reference):
        return Pinned(reference)
    offered = repository_of(base_image) if base_image else "none"
    raise InvalidInput(
        FIELD,
        f"{reference[:120]!r} is not an image this hub offers for the environment "
        f"{environment!r} (its image is {offered!r}); start the environment's current "
        "image, or choose another environment",
    )
