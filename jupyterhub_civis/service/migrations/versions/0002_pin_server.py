"""pins name the named server they were made from

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("civis_pins") as batch:
        batch.add_column(
            sa.Column("server", sa.String(255), nullable=False, server_default="")
        )


def downgrade():
    with op.batch_alter_table("civis_pins") as batch:
        batch.drop_column("server")
