"""Metadata schema of the result service (SQLAlchemy 2).

The schema is created and upgraded only by Alembic (``migrations/``); these
classes must match the newest revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Result(Base):
    """A committed result: visible to its owner, its blob complete."""

    __tablename__ = "civis_results"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(255), index=True)
    key: Mapped[str] = mapped_column(sa.String(128), default="")
    sql: Mapped[str] = mapped_column(sa.Text, default="")
    connection: Mapped[str] = mapped_column(sa.String(255), default="")
    rows: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    size: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    created: Mapped[float] = mapped_column(sa.Float)
    last_access: Mapped[float] = mapped_column(sa.Float)

    __table_args__ = (sa.Index("ix_civis_results_owner_key", "owner", "key"),)


class Pin(Base):
    """A notebook's reference to a result: the result is never evicted while pinned."""

    __tablename__ = "civis_pins"

    result_id: Mapped[str] = mapped_column(
        sa.String(32), sa.ForeignKey("civis_results.id", ondelete="CASCADE"), primary_key=True
    )
    ref: Mapped[str] = mapped_column(sa.String(1024), primary_key=True)
    created: Mapped[float] = mapped_column(sa.Float)
    #: the named server the pin was last made from ("" = the user's default server)
    server: Mapped[str] = mapped_column(sa.String(255), default="", server_default="")


class Upload(Base):
    """An upload in progress; its blob is an orphan once the heartbeat goes stale."""

    __tablename__ = "civis_uploads"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(255))
    started: Mapped[float] = mapped_column(sa.Float)
    heartbeat: Mapped[float] = mapped_column(sa.Float)


# the sharing tables belong to the same metadata (and the same migrations)
# the report tables live in their own module, on this Base (migration 0004_reports)
from jupyterhub_civis.service.reports import models as _report_models  # noqa: E402,F401
from jupyterhub_civis.service.shares import models as _shares  # noqa: E402, F401
