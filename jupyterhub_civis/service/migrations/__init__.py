"""Alembic migrations of the service's metadata, configured from code (no alembic.ini)."""

from __future__ import annotations

import os

from alembic import command
from alembic.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))


def alembic_config(connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", HERE)
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine, revision: str = "head") -> None:
    """Bring the database to ``revision``; keeps existing data (safe on every start)."""
    import sqlalchemy as sa

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # replicas starting together: one migrates, the others wait and find it done
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7263001)"))
        command.upgrade(alembic_config(conn), revision)


def current(engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": "civis_alembic_version"})
        return ctx.get_current_revision()
