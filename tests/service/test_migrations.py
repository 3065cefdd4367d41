"""The ORM models and the Alembic migrations describe the same schema, on SQLite and
PostgreSQL: a model changed without a migration (or the reverse) fails here."""

import json

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from jupyterhub_civis.service.migrations import upgrade
from jupyterhub_civis.service.models import Base


def _engine_at(request, tmp_path, revision):
    """An empty database of the fixture's kind, migrated up to ``revision``."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/meta.sqlite"
    else:
        url = request.getfixturevalue("fresh_pg_url")
    engine = sa.create_engine(url)
    upgrade(engine, revision)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated_engine(request, tmp_path):
    yield from _engine_at(request, tmp_path, "head")


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated_engine_at_0004(request, tmp_path):
    yield from _engine_at(request, tmp_path, "0004_reports")


def test_models_match_the_migrations(migrated_engine):
    def ours(obj, name, type_, reflected, compare_to):
        return not (type_ == "table" and name == "civis_alembic_version")

    with migrated_engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": ours}
        )
        assert compare_metadata(context, Base.metadata) == []


def test_reports_become_shares(migrated_engine_at_0004):
    """0005: a report's ``viewers`` become its share's audience; its successful runs
    become the share's versions, carrying (and pinning) the owner's results they pin."""
    engine = migrated_engine_at_0004
    nb = {"cells": [], "metadata": {"jupyterhub_civis": {"queries": {
        "k1": {"result_id": "a" * 32}, "k2": {"result_id": "b" * 32}}}},
        "nbformat": 4, "nbformat_minor": 5}
    raw = json.dumps(nb).encode()
    with engine.begin() as c:
        for rid, owner in (("a" * 32, "ann"), ("b" * 32, "bob")):  # bob's is not carried
            c.execute(sa.text(
                "insert into civis_results (id, owner, key, sql, connection, rows, size, created,"
                " last_access) values (:id, :owner, 'k', 's', 'c', 1, 1, 0, 0)"
            ), {"id": rid, "owner": owner})
        c.execute(sa.text(
            "insert into civis_reports (id, owner, title, path, notebook, environment, parameters,"
            " viewers, cron, timezone, on_demand, timeout, created, runs_started) values"
            " (:id, 'ann', 't', 'r.ipynb', :nb, '{}', '{}', :viewers, '', 'UTC', 'owner', 60, 1, 2)"
        ), {"id": "1" * 32, "nb": raw, "viewers": json.dumps(["cy", "*"])})
        for number, status in ((1, "done"), (2, "failed")):
            c.execute(sa.text(
                "insert into civis_report_runs (id, report_id, number, trigger, triggered_by,"
                " status, parameters, environment, created, finished, cell, cells, runner,"
                " cancel_requested, log, notebook, result_ids) values (:id, :rep, :n, 'user',"
                " 'ann', :status, '{}', :env, 1, 5, 0, 0, '', false, '', :nb, '[]')"
            ), {"id": str(number) * 32, "rep": "1" * 32, "n": number, "status": status,
                "env": json.dumps({"environment": "python"}), "nb": raw})
    upgrade(engine)
    with engine.connect() as c:
        share = c.execute(sa.text("select owner, kind, everyone from civis_shares")).one()
        assert tuple(share) == ("ann", "report", True)
        members = c.execute(sa.text("select kind, name from civis_share_members")).all()
        assert [tuple(m) for m in members] == [("user", "cy")]
        versions = c.execute(sa.text("select number, environment from civis_share_versions")).all()
        assert [(v[0], json.loads(v[1])) for v in versions] == [(1, {"name": "python", "packages": []})]
        carried = c.execute(sa.text("select result_id from civis_share_results")).scalars().all()
        assert carried == ["a" * 32]
        pins = c.execute(sa.text("select result_id, ref from civis_pins")).all()
        assert [tuple(p) for p in pins] == [("a" * 32, "share:" + "1" * 32)]
        columns = {col["name"] for col in sa.inspect(c).get_columns("civis_reports")}
        assert "viewers" not in columns
