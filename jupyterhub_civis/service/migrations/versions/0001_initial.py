"""initial schema: results, pins, uploads

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "civis_results",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("sql", sa.Text, nullable=False),
        sa.Column("connection", sa.String(255), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("last_access", sa.Float, nullable=False),
    )
    op.create_index("ix_civis_results_owner", "civis_results", ["owner"])
    op.create_index("ix_civis_results_owner_key", "civis_results", ["owner", "key"])
    op.create_table(
        "civis_pins",
        sa.Column(
            "result_id",
            sa.String(32),
            sa.ForeignKey("civis_results.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("ref", sa.String(1024), primary_key=True),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_table(
        "civis_uploads",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("started", sa.Float, nullable=False),
        sa.Column("heartbeat", sa.Float, nullable=False),
    )


def downgrade():
    op.drop_table("civis_uploads")
    op.drop_table("civis_pins")
    op.drop_table("civis_results")
