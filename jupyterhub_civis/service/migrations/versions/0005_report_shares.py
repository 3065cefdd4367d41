"""reports are shares: each report gets its share (same id, kind "report") whose
audience replaces ``civis_reports.viewers``; its successful runs become the share's
versions (numbered as the runs), carrying and pinning the results they pinned

Revision ID: 0005_report_shares
Revises: 0004_reports
"""

import hashlib
import json

import sqlalchemy as sa
from alembic import op

from jupyterhub_civis.service.shares import policy

revision = "0005_report_shares"
down_revision = "0004_reports"
branch_labels = None
depends_on = None

reports = sa.table(
    "civis_reports", sa.column("id"), sa.column("owner"), sa.column("title"),
    sa.column("path"), sa.column("viewers"), sa.column("created"),
)
runs = sa.table(
    "civis_report_runs", sa.column("report_id"), sa.column("number"), sa.column("status"),
    sa.column("notebook"), sa.column("environment"), sa.column("finished"),
)
shares = sa.table(
    "civis_shares", sa.column("id"), sa.column("owner"), sa.column("kind"), sa.column("title"),
    sa.column("path"), sa.column("server"), sa.column("everyone"), sa.column("created"),
    sa.column("updated"),
)
members = sa.table("civis_share_members", sa.column("share_id"), sa.column("kind"), sa.column("name"))
versions = sa.table(
    "civis_share_versions", sa.column("share_id"), sa.column("number"), sa.column("created"),
    sa.column("notebook"), sa.column("size"), sa.column("sha256"), sa.column("environment"),
)
carried = sa.table("civis_share_results", sa.column("share_id"), sa.column("number"),
                   sa.column("result_id"))
results = sa.table("civis_results", sa.column("id"), sa.column("owner"))
pins = sa.table("civis_pins", sa.column("result_id"), sa.column("ref"), sa.column("server"),
                sa.column("created"))


def _loads(raw, default):
    try:
        return json.loads(raw) if raw else default
    except ValueError:
        return default


def _environment(notebook: dict, options: dict) -> dict:
    record = policy.environment_record(notebook)
    name = options.get("environment")
    if not record and isinstance(name, str) and name:
        record = {"name": name, "packages": list(options.get("packages") or [])}
    return record


def upgrade():
    bind = op.get_bind()
    for r in bind.execute(sa.select(reports)).all():
        viewers = _loads(r.viewers, [])
        bind.execute(shares.insert().values(
            id=r.id, owner=r.owner, kind="report", title=r.title, path=r.path, server="",
            everyone="*" in viewers, created=r.created, updated=r.created))
        for name in sorted({v for v in viewers if isinstance(v, str) and v != "*"}):
            bind.execute(members.insert().values(share_id=r.id, kind="user", name=name))
        done = bind.execute(sa.select(runs).where(
            runs.c.report_id == r.id, runs.c.status == "done", runs.c.notebook.is_not(None)
        )).all()
        held_pins = set()
        for run in done:
            raw = bytes(run.notebook)
            try:
                nb = policy.parse_notebook(raw)
            except ValueError:
                continue
            env = _environment(nb, _loads(run.environment, {}))
            bind.execute(versions.insert().values(
                share_id=r.id, number=run.number, created=run.finished or r.created,
                notebook=raw, size=len(raw), sha256=hashlib.sha256(raw).hexdigest(),
                environment=json.dumps(env)))
            wanted = policy.pinned_results(nb)
            owned = bind.execute(sa.select(results.c.id).where(
                results.c.id.in_(wanted), results.c.owner == r.owner)).scalars().all() if wanted else []
            for rid in sorted(owned):
                bind.execute(carried.insert().values(share_id=r.id, number=run.number, result_id=rid))
                if rid not in held_pins:
                    held_pins.add(rid)
                    bind.execute(pins.insert().values(result_id=rid, ref=policy.pin_ref(r.id),
                                                      server="", created=run.finished or r.created))
    with op.batch_alter_table("civis_reports") as batch:
        batch.drop_column("viewers")


def downgrade():
    with op.batch_alter_table("civis_reports") as batch:
        batch.add_column(sa.Column("viewers", sa.Text, nullable=False, server_default="[]"))
    ids = sa.select(shares.c.id).where(shares.c.kind == "report")
    refs = [policy.pin_ref(i) for i in op.get_bind().execute(ids).scalars()]
    if refs:
        op.execute(sa.delete(pins).where(pins.c.ref.in_(refs)))
    op.execute(sa.delete(shares).where(shares.c.kind == "report"))
