"""Report tables (SQLAlchemy 2), on the service's ``Base``; migrations ``0004_reports``
and ``0005_report_shares`` (who may see a report is its share's audience: ``sharing.py``).

A report is a notebook its owner asked the service to run again and again; each
run is kept: once final, a run row never changes (its executed notebook, the
environment it ran in, the results its queries stored — pinned by the run).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from jupyterhub_civis.service.models import Base


class Report(Base):
    __tablename__ = "civis_reports"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(255), index=True)
    title: Mapped[str] = mapped_column(sa.String(255), default="")
    #: the notebook's path in the owner's servers: its queries pin under it
    path: Mapped[str] = mapped_column(sa.String(1024))
    #: the notebook as shared (nbformat JSON, UTF-8)
    notebook: Mapped[bytes] = mapped_column(sa.LargeBinary)
    #: the recorded environment: the user_options a report server starts with (JSON)
    environment: Mapped[str] = mapped_column(sa.Text, default="{}")
    #: the owner's parameter values for scheduled runs (JSON)
    parameters: Mapped[str] = mapped_column(sa.Text, default="{}")
    cron: Mapped[str] = mapped_column(sa.String(255), default="")
    timezone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    #: who may refresh on demand: "owner" or "audience"
    on_demand: Mapped[str] = mapped_column(sa.String(16), default="owner")
    #: a view of a latest run older than this many seconds starts a refresh (None: never)
    refresh_after: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    timeout: Mapped[float] = mapped_column(sa.Float)
    #: the next scheduled fire (epoch seconds); replicas claim it by compare-and-set
    next_fire: Mapped[float | None] = mapped_column(sa.Float, nullable=True, index=True)
    created: Mapped[float] = mapped_column(sa.Float)
    #: runs numbered 1, 2, … per report
    runs_started: Mapped[int] = mapped_column(sa.Integer, default=0)


class ReportRun(Base):
    __tablename__ = "civis_report_runs"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    report_id: Mapped[str] = mapped_column(
        sa.String(32), sa.ForeignKey("civis_reports.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(sa.Integer)
    #: the report id while the run is queued or running, else NULL: the unique
    #: constraint makes runs single-flight per report across replicas
    active: Mapped[str | None] = mapped_column(sa.String(32), nullable=True, unique=True)
    #: "schedule", "user" (on demand) or "view" (refresh on view)
    trigger: Mapped[str] = mapped_column(sa.String(16))
    triggered_by: Mapped[str] = mapped_column(sa.String(255), default="")
    status: Mapped[str] = mapped_column(sa.String(16))
    parameters: Mapped[str] = mapped_column(sa.Text, default="{}")
    environment: Mapped[str] = mapped_column(sa.Text, default="{}")
    created: Mapped[float] = mapped_column(sa.Float)
    started: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    finished: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    #: progress: code cell being run, of how many
    cell: Mapped[int] = mapped_column(sa.Integer, default=0)
    cells: Mapped[int] = mapped_column(sa.Integer, default=0)
    #: the replica running it, and until when its lease holds (renewed while it runs)
    runner: Mapped[str] = mapped_column(sa.String(64), default="")
    lease_until: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    #: {"message", "cell", "source", "output"} of a run that did not succeed (JSON)
    error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    log: Mapped[str] = mapped_column(sa.Text, default="")
    #: the executed notebook (nbformat JSON, UTF-8) and the results its queries stored
    notebook: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)
    result_ids: Mapped[str] = mapped_column(sa.Text, default="[]")

    __table_args__ = (sa.Index("ix_civis_report_runs_report_number", "report_id", "number"),)
