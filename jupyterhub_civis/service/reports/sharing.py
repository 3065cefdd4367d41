"""A report is a share of kind ``report`` with the report's id (the adapter).

- its **audience, expiry and revocation** are the share's: ``shares.policy.may_view``
  decides who sees a report (users, groups, everyone who can log in; the one 404),
  and "Shared by me" / ``api/shares/<id>`` manage them as for any share;
- every **successful run is a ``ShareVersion``** numbered as the run, written in the
  transaction that makes the run final: its executed notebook, its environment, and
  the results its queries pinned (carried and pinned by the share). So "Open a
  copy" of a run is the share copy flow (``shares/copy.py``, ``POST s/<id>/copy?v=<run
  number>``), and the copy's reproducible queries read exactly those results through
  the share.

Every function works inside the caller's session (one transaction with the report's
own change: no partial writes).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from jupyterhub_civis.service.models import Pin
from jupyterhub_civis.service.shares import policy as share_policy
from jupyterhub_civis.service.shares.models import Share
from jupyterhub_civis.service.shares.store import add_version, set_audience

KIND = "report"


def environment_record(options: dict) -> dict:
    """The share environment record (``{"name", "packages"}``) of a report server's
    ``user_options``: what a copy's server starts with (``shares.hub.copy_options``)."""
    name = options.get("environment")
    if not isinstance(name, str) or not name:
        return {}
    return {"name": name, "packages": list(options.get("packages") or [])}


def create_share(
    s: Session, report_id: str, owner: str, *, title: str, path: str,
    audience: share_policy.Audience, now: float, expires: float | None = None,
) -> None:
    s.add(Share(id=report_id, owner=owner, kind=KIND, title=title, path=path, server="",
                everyone=audience.everyone, created=now, updated=now, expires=expires))
    s.flush()
    set_audience(s, report_id, audience)


def publish_run(s: Session, report_id: str, number: int, notebook: bytes, options: dict,
                now: float) -> None:
    """Run ``number``'s executed notebook as version ``number`` of the report's share."""
    row = s.get(Share, report_id)
    if row is None or row.revoked is not None:
        return  # a revoked link carries (and pins) nothing more
    try:
        share_policy.parse_notebook(notebook)
    except ValueError:
        return  # not an nbformat 4 notebook: the run stays viewable, not copyable
    add_version(s, row, notebook, now, number=number, environment=environment_record(options))


def delete_share(s: Session, report_id: str) -> None:
    s.execute(sa.delete(Pin).where(Pin.ref == share_policy.pin_ref(report_id)))
    s.execute(sa.delete(Share).where(Share.id == report_id))
