"""Request bodies of ``api/shares…`` (pydantic, ``extra="forbid"``): what a caller may send.

Errors come out as ``InvalidInput`` naming the field (``audience.users[0]: …``),
answered 400 by the handlers.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from jupyterhub_civis.errors import parse_model

#: The largest notebook a share version may hold (its .ipynb bytes, outputs included).
MAX_NOTEBOOK_BYTES = 64 << 20
MAX_AUDIENCE = 1000

Name = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f/<>&\"']+$")
]
Text = Annotated[str, StringConstraints(max_length=255, pattern=r"^[^\x00]*$")]
Path = Annotated[str, StringConstraints(max_length=1024, pattern=r"^[^\x00]*$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AudienceBody(_Body):
    """Who may open the link besides its owner (never anonymous)."""

    users: Annotated[list[Name], Field(max_length=MAX_AUDIENCE)] = []
    groups: Annotated[list[Name], Field(max_length=MAX_AUDIENCE)] = []
    #: every user who can log in to this hub
    everyone: bool = False

    @model_validator(mode="after")
    def _someone(self):
        if not (self.users or self.groups or self.everyone):
            raise ValueError(
                "name at least one user or group, or set everyone (every user of this hub)"
            )
        return self


class CreateShare(_Body):
    kind: Literal["snapshot"] = "snapshot"
    #: the .ipynb file's text exactly as saved (outputs included)
    notebook: Annotated[str, StringConstraints(min_length=2, max_length=MAX_NOTEBOOK_BYTES)]
    path: Path = ""
    server: Text = ""
    title: Text = ""
    audience: AudienceBody
    #: when the link stops working, seconds since the epoch (UTC); none: never
    expires: Annotated[float, Field(gt=0, lt=1e11)] | None = None


class CreateLiveShare(_Body):
    """A JupyterHub share code for one of the caller's running servers (pair work)."""

    server: Text = ""
    title: Text = ""
    #: seconds the code may be accepted (JupyterHub's own bounds: a minute to a year)
    expires_in: Annotated[int, Field(ge=60, le=525600 * 60)] = 86400


class NewVersion(_Body):
    notebook: Annotated[str, StringConstraints(min_length=2, max_length=MAX_NOTEBOOK_BYTES)]
    path: Path | None = None


class UpdateShare(_Body):
    """A change of audience, expiry (``null``: never) or title; absent fields stay."""

    audience: AudienceBody | None = None
    expires: Annotated[float, Field(gt=0, lt=1e11)] | None = None
    title: Text | None = None


class ViewQuery(_Body):
    v: Annotated[int, Field(ge=1, le=1_000_000)] | None = None


def parse(model: type[BaseModel], raw: bytes | dict, root: str = "body"):
    """``raw`` (a JSON body, or query arguments as a dict) as ``model``."""
    return parse_model(model, raw, root)


def fields_set(body: BaseModel) -> set[str]:
    return set(body.model_fields_set)
