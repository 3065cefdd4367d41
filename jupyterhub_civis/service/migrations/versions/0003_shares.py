"""shared-notebook links: shares, audience, versions, carried results, audit events

Revision ID: 0003_shares
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_shares"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "civis_shares",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("server", sa.String(255), nullable=False),
        sa.Column("everyone", sa.Boolean, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("updated", sa.Float, nullable=False),
        sa.Column("expires", sa.Float, nullable=True),
        sa.Column("revoked", sa.Float, nullable=True),
        sa.Column("live_code_id", sa.String(255), nullable=True),
    )
    op.create_index("ix_civis_shares_owner", "civis_shares", ["owner"])
    op.create_table(
        "civis_share_members",
        sa.Column(
            "share_id",
            sa.String(64),
            sa.ForeignKey("civis_shares.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
    )
    op.create_table(
        "civis_share_versions",
        sa.Column(
            "share_id",
            sa.String(64),
            sa.ForeignKey("civis_shares.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("notebook", sa.LargeBinary, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        sa.Column("rendered", sa.LargeBinary, nullable=True),
    )
    op.create_table(
        "civis_share_results",
        sa.Column("share_id", sa.String(64), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column(
            "result_id",
            sa.String(32),
            sa.ForeignKey("civis_results.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.ForeignKeyConstraint(
            ["share_id", "number"],
            ["civis_share_versions.share_id", "civis_share_versions.number"],
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_civis_share_results_result", "civis_share_results", ["result_id"])
    op.create_table(
        "civis_share_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "share_id",
            sa.String(64),
            sa.ForeignKey("civis_shares.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_civis_share_events_share_id", "civis_share_events", ["share_id"])


def downgrade():
    op.drop_table("civis_share_events")
    op.drop_table("civis_share_results")
    op.drop_table("civis_share_versions")
    op.drop_table("civis_share_members")
    op.drop_table("civis_shares")
