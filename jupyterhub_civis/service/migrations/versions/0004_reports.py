"""report links: reports and their immutable runs

Revision ID: 0004_reports
Revises: 0003_shares
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_reports"
down_revision = "0003_shares"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "civis_reports",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("notebook", sa.LargeBinary, nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        sa.Column("parameters", sa.Text, nullable=False),
        sa.Column("viewers", sa.Text, nullable=False),
        sa.Column("cron", sa.String(255), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("on_demand", sa.String(16), nullable=False),
        sa.Column("refresh_after", sa.Float, nullable=True),
        sa.Column("timeout", sa.Float, nullable=False),
        sa.Column("next_fire", sa.Float, nullable=True),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("runs_started", sa.Integer, nullable=False),
    )
    op.create_index("ix_civis_reports_owner", "civis_reports", ["owner"])
    op.create_index("ix_civis_reports_next_fire", "civis_reports", ["next_fire"])
    op.create_table(
        "civis_report_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "report_id",
            sa.String(32),
            sa.ForeignKey("civis_reports.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("active", sa.String(32), nullable=True, unique=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("triggered_by", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("parameters", sa.Text, nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("started", sa.Float, nullable=True),
        sa.Column("finished", sa.Float, nullable=True),
        sa.Column("cell", sa.Integer, nullable=False),
        sa.Column("cells", sa.Integer, nullable=False),
        sa.Column("runner", sa.String(64), nullable=False),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("log", sa.Text, nullable=False),
        sa.Column("notebook", sa.LargeBinary, nullable=True),
        sa.Column("result_ids", sa.Text, nullable=False),
    )
    op.create_index("ix_civis_report_runs_report_id", "civis_report_runs", ["report_id"])
    op.create_index(
        "ix_civis_report_runs_report_number", "civis_report_runs", ["report_id", "number"]
    )


def downgrade():
    op.drop_table("civis_report_runs")
    op.drop_table("civis_reports")
