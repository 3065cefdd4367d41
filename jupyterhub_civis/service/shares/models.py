"""Tables of shared-notebook links; part of the service's one metadata (``Base``).

A share is generic over its ``kind``; what it publishes are its versions
(``ShareVersion``: notebook bytes, environment record, the results it carries).
A report's runs (later) are versions of a share of kind ``report``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from jupyterhub_civis.service.models import Base


class Share(Base):
    __tablename__ = "civis_shares"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(255), index=True)
    #: "snapshot" | "live" | "report"
    kind: Mapped[str] = mapped_column(sa.String(16))
    title: Mapped[str] = mapped_column(sa.String(255), default="")
    #: the notebook's path on the owner's server when it was shared (shown, never opened)
    path: Mapped[str] = mapped_column(sa.String(1024), default="")
    #: the owner's named server it came from ("" = default server)
    server: Mapped[str] = mapped_column(sa.String(255), default="")
    #: every user who can log in to the hub
    everyone: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    created: Mapped[float] = mapped_column(sa.Float)
    updated: Mapped[float] = mapped_column(sa.Float)
    expires: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    revoked: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    #: kind "live": the JupyterHub share code's id (its code is never stored)
    live_code_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)


class ShareMember(Base):
    """One entry of a share's audience: a Hub user or a Hub group."""

    __tablename__ = "civis_share_members"

    share_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("civis_shares.id", ondelete="CASCADE"), primary_key=True
    )
    #: "user" | "group"
    kind: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), primary_key=True)


class ShareVersion(Base):
    """One immutable publication of a share: ``?v=<number>``."""

    __tablename__ = "civis_share_versions"

    share_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("civis_shares.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    created: Mapped[float] = mapped_column(sa.Float)
    #: the .ipynb bytes as saved (outputs included)
    notebook: Mapped[bytes] = mapped_column(sa.LargeBinary)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    #: JSON: ``metadata.jupyterhub_civis.environment`` of the notebook ("{}" if none)
    environment: Mapped[str] = mapped_column(sa.Text, default="{}")
    #: the sanitised HTML rendering and its image files (``render.pack``), filled on
    #: first view (any replica); an older rendering is the HTML alone (images inlined)
    rendered: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)


class ShareResult(Base):
    """A result a version carries; the share pins it (ref ``share:<id>``) while it lives."""

    __tablename__ = "civis_share_results"

    share_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    number: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    result_id: Mapped[str] = mapped_column(
        sa.String(32), sa.ForeignKey("civis_results.id", ondelete="CASCADE"), primary_key=True
    )

    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["share_id", "number"],
            ["civis_share_versions.share_id", "civis_share_versions.number"],
            ondelete="CASCADE",
        ),
        sa.Index("ix_civis_share_results_result", "result_id"),
    )


class ShareEvent(Base):
    """Who viewed or copied a share, and when (the owner's audit)."""

    __tablename__ = "civis_share_events"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    share_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("civis_shares.id", ondelete="CASCADE"), index=True
    )
    user: Mapped[str] = mapped_column(sa.String(255))
    #: "view" | "copy"
    action: Mapped[str] = mapped_column(sa.String(8))
    number: Mapped[int] = mapped_column(sa.Integer, default=0)
    at: Mapped[float] = mapped_column(sa.Float)
