"""Report rules (pure: no I/O, no clock — callers pass ``now``).

- **Schedules**: a cron expression read in an IANA time zone (``0 7 * * 1-5`` in
  ``Europe/Paris`` fires at 07:00 Paris time on weekdays, across daylight-saving
  changes). ``next_fire`` is the first fire strictly after a moment.
- **Catch-up**: fires missed while no replica was running (service down, hub
  down) collapse into ONE run as soon as a replica is back; the next fire is
  then the first one after that moment. A report never runs a burst of old fires.
- **Who may do what**: the owner everything; a viewer — whoever the report's
  share lets see it (``shares.policy.may_view``: named users, groups, everyone
  who can log in; not once revoked or expired) — reads the latest successful
  run and the history's summary, opens a copy of a successful run, and
  refreshes on demand only when ``on_demand == "audience"``. Anyone else: "not
  found" (404), exactly as for a report that does not exist. Errors, logs and
  cancel: owner only.
- **Refresh on view**: a view of a report whose latest successful run is older
  than ``refresh_after`` seconds (and with no run going) starts one.
"""

from __future__ import annotations

import datetime
import json
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from jupyterhub_civis.errors import InvalidInput
from jupyterhub_civis.service.shares.policy import Audience
from jupyterhub_civis.service.shares.schemas import AudienceBody

OWNER, AUDIENCE = "owner", "audience"
EVERYONE = "*"
NOT_FOUND = "report not found"
ACTIVE = ("queued", "running")
FINAL = ("done", "failed", "cancelled", "timeout")
MAX_VIEWERS = 1000

UserName = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00]*$")]


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("schedule.timezone", f"unknown time zone {name!r} (e.g. 'Europe/Paris')") from None
    return name


def check_cron(expression: str) -> str:
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise InvalidInput(
            "schedule.cron", f"{expression!r} is not a 5-field cron expression (e.g. '0 7 * * 1-5')"
        )
    return expression


def next_fire(cron: str, timezone: str, after: float) -> float:
    """The first fire of ``cron`` in ``timezone`` strictly after ``after`` (epoch seconds)."""
    start = datetime.datetime.fromtimestamp(after, ZoneInfo(timezone))
    return croniter(cron, start).get_next(float)


def due(next_fire_at: float | None, now: float) -> bool:
    return next_fire_at is not None and next_fire_at <= now


def after_fire(cron: str, timezone: str, now: float) -> float:
    """Where ``next_fire`` goes once a fire at or before ``now`` is claimed (catch-up: one run
    for any number of missed fires)."""
    return next_fire(cron, timezone, now)


# ---------------------------------------------------------------- permissions


def may_refresh(owner: str, on_demand: str, user: str | None) -> bool:
    """Whether ``user``, whom the report's share lets see it, may refresh it on demand."""
    return (user is not None and user == owner) or on_demand == AUDIENCE


def may_manage(owner: str, user: str | None) -> bool:
    """Cancel, delete, read errors and logs: the owner."""
    return user is not None and user == owner


def refresh_on_view(refresh_after: float | None, latest_finished: float | None,
                    active: bool, now: float) -> bool:
    if refresh_after is None or active:
        return False
    return latest_finished is None or now - latest_finished > refresh_after


# ---------------------------------------------------------------- requests


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cron: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "UTC"


class ReportRequest(BaseModel):
    """Body of ``POST api/reports``: a notebook and how it refreshes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[^\x00/][^\x00]*\.ipynb$")]
    notebook: dict
    title: Annotated[str, StringConstraints(max_length=255)] = ""
    #: the user_options a report server starts with (the notebook's recorded environment)
    environment: dict[str, Any] = {}
    parameters: dict[str, Any] = {}
    #: who may see it besides the owner, as for a share (none: the owner only)
    audience: AudienceBody | None = None
    #: shorthand for ``audience.users`` (``"*"``: everyone who can log in)
    viewers: Annotated[list[UserName], Field(max_length=MAX_VIEWERS)] = []
    schedule: Schedule | None = None
    on_demand: Annotated[str, StringConstraints(pattern=r"^(owner|audience)$")] = OWNER
    refresh_after: Annotated[float, Field(gt=0, le=366 * 86400)] | None = None
    #: when the report's link stops working for its audience (seconds since the epoch, UTC)
    expires: Annotated[float, Field(gt=0, lt=1e11)] | None = None
    timeout: Annotated[float, Field(gt=0, le=24 * 3600)] | None = None

    @model_validator(mode="after")
    def _one_audience(self):
        if self.audience is not None and self.viewers:
            raise ValueError("give the audience or viewers, not both")
        return self

    @field_validator("path")
    @classmethod
    def _relative(cls, path):
        if any(part in ("", ".", "..") for part in path.split("/")):
            raise ValueError("must be a relative notebook path without '.' or '..' parts")
        return path


class ReportChange(BaseModel):
    """Body of ``PATCH api/reports/<id>`` (owner): the refresh policy to change. A field
    left out stays; ``schedule: null`` / ``refresh_after: null`` turn that refresh off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: the parameter values scheduled (and owner's plain Refresh) runs use
    parameters: dict[str, Any] | None = None
    schedule: Schedule | None = None
    on_demand: Annotated[str, StringConstraints(pattern=r"^(owner|audience)$")] | None = None
    refresh_after: Annotated[float, Field(gt=0, le=366 * 86400)] | None = None

    @model_validator(mode="after")
    def _something(self):
        if not self.model_fields_set:
            raise ValueError("say what to change: parameters, schedule, on_demand or refresh_after")
        if "on_demand" in self.model_fields_set and self.on_demand is None:
            raise ValueError("on_demand: is 'owner' or 'audience'")
        return self


class RunRequest(BaseModel):
    """Body of ``POST api/reports/<id>/runs``: parameter values for this run (optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    parameters: dict[str, Any] | None = None


def audience(request: ReportRequest) -> Audience:
    """The report's share audience."""
    if request.audience is not None:
        body = request.audience
        return Audience(frozenset(body.users), frozenset(body.groups), body.everyone)
    users = frozenset(request.viewers) - {EVERYONE}
    return Audience(users, frozenset(), EVERYONE in request.viewers)


def recorded_environment(request: ReportRequest) -> dict:
    """What a report server starts with: the request's, else the notebook's recorded one."""
    if request.environment:
        return dict(request.environment)
    recorded = ((request.notebook.get("metadata") or {}).get("jupyterhub_civis") or {}).get(
        "environment"
    ) or {}
    name = recorded.get("name") if isinstance(recorded, dict) else None
    options: dict[str, Any] = {"environment": name} if isinstance(name, str) and name else {}
    packages = recorded.get("packages") if isinstance(recorded, dict) else None
    if isinstance(packages, list) and packages:
        options["packages"] = [p for p in packages if isinstance(p, str)]
    return options


def server_name(report_id: str) -> str:
    """The owner's named server a report runs in (one per report; removed after runs)."""
    return f"report-{report_id[:12]}"


def loads(raw: str | None, default):
    try:
        return json.loads(raw) if raw else default
    except ValueError:
        return default
