"""The ORM models and the Alembic migrations describe the same schema, on SQLite and
PostgreSQL: a model changed without a migration (or the reverse) fails here."""

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from jupyterhub_civis.service.migrations import upgrade
from jupyterhub_civis.service.models import Base


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated_engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/meta.sqlite"
    else:
        url = request.getfixturevalue("fresh_pg_url")
    engine = sa.create_engine(url)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_models_match_the_migrations(migrated_engine):
    def ours(obj, name, type_, reflected, compare_to):
        return not (type_ == "table" and name == "civis_alembic_version")

    with migrated_engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": ours}
        )
        assert compare_metadata(context, Base.metadata) == []
