"""Reports and runs in the service's database (blocking; called from the I/O pool).

Everything several replicas must agree on is decided by the database:

- **single flight**: a run row holds its report's id in the unique column
  ``active`` while queued or running, so a second "start" for the same report
  fails its insert and returns the run already going — on any replica;
- **fires**: a replica claims a scheduled fire by compare-and-set on
  ``next_fire`` (``UPDATE … WHERE next_fire = <what it read>``); exactly one
  claim of a fire succeeds;
- **leases**: the replica running a run renews ``lease_until``; a run whose
  lease ran out (its runner was killed, or the service restarted) is marked
  failed by whichever replica sees it first, and its report can run again.

A final run is never updated again (``finish`` only touches active runs).
Its results are pinned by the run (``civis_pins`` ref ``report-run:<id>``)
in the transaction that finishes it; a successful run is also published there
as a version of the report's share (``sharing.py``: who may see a report, and
"Open a copy" of a run, are the share machinery's).
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from jupyterhub_civis.service.models import Pin, Result
from jupyterhub_civis.service.reports import policy, sharing
from jupyterhub_civis.service.reports.models import Report, ReportRun

RUN_PIN_PREFIX = "report-run:"
RUN_SUMMARY = (
    "id", "report_id", "number", "trigger", "triggered_by", "status", "created",
    "started", "finished", "cell", "cells",
)


class NotFound(Exception):
    pass


@dataclass
class Started:
    run: dict
    new: bool  # False: joined the run already going


def report_json(row: Report) -> dict:
    return {
        "id": row.id,
        "owner": row.owner,
        "title": row.title,
        "path": row.path,
        "environment": policy.loads(row.environment, {}),
        "parameters": policy.loads(row.parameters, {}),
        "schedule": {"cron": row.cron, "timezone": row.timezone} if row.cron else None,
        "on_demand": row.on_demand,
        "refresh_after": row.refresh_after,
        "timeout": row.timeout,
        "next_fire": row.next_fire,
        "created": row.created,
    }


def run_json(row: ReportRun, detail: bool = False) -> dict:
    out = {name: getattr(row, name) for name in RUN_SUMMARY}
    end = row.finished or time.time()
    out["duration"] = round(end - row.started, 3) if row.started else None
    out["result_ids"] = policy.loads(row.result_ids, [])
    out["parameters"] = policy.loads(row.parameters, {})
    out["environment"] = policy.loads(row.environment, {})
    if detail:  # the owner's view: why it failed, and its log
        out["error"] = policy.loads(row.error, None)
        out["log"] = row.log
    return out


class ReportStore:
    def __init__(self, engine: sa.Engine, clock=time.time):
        self.engine = engine
        self.clock = clock
        self.session = sessionmaker(engine, expire_on_commit=False)

    # ------------------------------------------------------------ reports
    def create(self, owner: str, request: policy.ReportRequest, default_timeout: float) -> dict:
        """The report and its share (``request``'s audience), in one transaction."""
        now = self.clock()
        schedule = request.schedule
        if schedule:
            policy.check_cron(schedule.cron)
            policy.check_timezone(schedule.timezone)
        row = Report(
            id=secrets.token_hex(16),  # also the share's id: 128 random bits
            owner=owner,
            title=request.title or request.path.rsplit("/", 1)[-1],
            path=request.path,
            notebook=json.dumps(request.notebook).encode(),
            environment=json.dumps(policy.recorded_environment(request)),
            parameters=json.dumps(request.parameters, default=str),
            cron=schedule.cron if schedule else "",
            timezone=schedule.timezone if schedule else "UTC",
            on_demand=request.on_demand,
            refresh_after=request.refresh_after,
            timeout=request.timeout or default_timeout,
            next_fire=policy.next_fire(schedule.cron, schedule.timezone, now) if schedule else None,
            created=now,
            runs_started=0,
        )
        with self.session.begin() as s:
            s.add(row)
            s.flush()
            sharing.create_share(s, row.id, owner, title=row.title, path=row.path,
                                 audience=policy.audience(request), now=now,
                                 expires=request.expires)
        return report_json(row)

    def change(self, report_id: str, change: policy.ReportChange) -> dict:
        """Apply the owner's ``change`` to the refresh policy; the next fire follows a new
        schedule. ``change.parameters`` must already be validated against the notebook."""
        fields = change.model_fields_set
        schedule = change.schedule
        if schedule:
            policy.check_cron(schedule.cron)
            policy.check_timezone(schedule.timezone)
        with self.session.begin() as s:
            row = s.get(Report, report_id)
            if row is None:
                raise NotFound(report_id)
            if "parameters" in fields:
                row.parameters = json.dumps(change.parameters or {}, default=str)
            if "schedule" in fields:
                row.cron = schedule.cron if schedule else ""
                row.timezone = schedule.timezone if schedule else "UTC"
                row.next_fire = (policy.next_fire(schedule.cron, schedule.timezone, self.clock())
                                 if schedule else None)
            if "on_demand" in fields:
                row.on_demand = change.on_demand
            if "refresh_after" in fields:
                row.refresh_after = change.refresh_after
        return report_json(row)

    def get(self, report_id: str) -> Report:
        with self.session() as s:
            row = s.get(Report, report_id)
        if row is None:
            raise NotFound(report_id)
        return row

    def listed(self, owner: str, shared: list[str] = ()) -> list[dict]:
        """Reports ``owner`` owns and those with ids in ``shared``, newest first."""
        with self.session() as s:
            rows = s.scalars(
                sa.select(Report).where((Report.owner == owner) | Report.id.in_(list(shared)))
                .order_by(Report.created.desc())
            ).all()
        return [report_json(r) for r in rows]

    def delete(self, report_id: str) -> None:
        with self.session.begin() as s:
            self._unpin_runs(s, report_id)
            sharing.delete_share(s, report_id)
            s.execute(sa.delete(ReportRun).where(ReportRun.report_id == report_id))
            s.execute(sa.delete(Report).where(Report.id == report_id))

    # ------------------------------------------------------------ runs
    def start_run(self, report_id: str, trigger: str, by: str, parameters: dict | None) -> Started:
        """A new queued run, or the run already queued/running (single flight)."""
        now = self.clock()
        for _ in range(3):
            try:
                with self.session.begin() as s:
                    report = s.get(Report, report_id, with_for_update=True)
                    if report is None:
                        raise NotFound(report_id)
                    report.runs_started += 1
                    values = parameters if parameters is not None else policy.loads(report.parameters, {})
                    row = ReportRun(
                        id=uuid.uuid4().hex, report_id=report_id, number=report.runs_started,
                        active=report_id, trigger=trigger, triggered_by=by, status="queued",
                        parameters=json.dumps(values, default=str),
                        environment=report.environment, created=now, cell=0, cells=0,
                        runner="", lease_until=None, cancel_requested=False, log="",
                        result_ids="[]",
                    )
                    s.add(row)
                return Started(run_json(row), True)
            except IntegrityError:
                active = self.active_run(report_id)
                if active is not None:
                    return Started(active, False)
        raise RuntimeError(f"could not start or join a run of {report_id}")

    def active_run(self, report_id: str) -> dict | None:
        with self.session() as s:
            row = s.scalars(sa.select(ReportRun).where(ReportRun.active == report_id)).first()
        return run_json(row) if row else None

    def claim(self, run_id: str, runner: str, lease: float) -> bool:
        """Take a queued run for ``runner`` (one replica wins)."""
        with self.session.begin() as s:
            done = s.execute(
                sa.update(ReportRun)
                .where(ReportRun.id == run_id, ReportRun.status == "queued")
                .values(status="running", runner=runner, started=self.clock(),
                        lease_until=self.clock() + lease)
            )
        return done.rowcount == 1

    def progress(self, run_id: str, runner: str, lease: float, **fields) -> bool:
        """Renew the lease (and record progress); False if the run was cancelled or lost."""
        with self.session.begin() as s:
            done = s.execute(
                sa.update(ReportRun)
                .where(ReportRun.id == run_id, ReportRun.runner == runner,
                       ReportRun.status == "running")
                .values(lease_until=self.clock() + lease, **fields)
            )
            row = s.get(ReportRun, run_id)
        return done.rowcount == 1 and not row.cancel_requested

    def request_cancel(self, run_id: str) -> None:
        with self.session.begin() as s:
            s.execute(
                sa.update(ReportRun)
                .where(ReportRun.id == run_id, ReportRun.active.is_not(None))
                .values(cancel_requested=True)
            )
            row = s.get(ReportRun, run_id)
        if row is not None and row.status == "queued":
            self.finish(run_id, "cancelled", error={"message": "cancelled before it started"})

    def finish(self, run_id: str, status: str, *, notebook: bytes | None = None,
               result_ids: list[str] | None = None, error: dict | None = None, log: str = "",
               cell: int | None = None, cells: int | None = None) -> bool:
        """Make an active run final (and immutable), pinning its results. False if it was
        final already (e.g. marked failed after its lease ran out)."""
        ids = list(result_ids or [])
        values = dict(status=status, active=None, finished=self.clock(), notebook=notebook,
                      result_ids=json.dumps(ids), error=json.dumps(error) if error else None,
                      log=log, lease_until=None)
        if cell is not None:
            values.update(cell=cell, cells=cells or 0)
        with self.session.begin() as s:
            done = s.execute(
                sa.update(ReportRun)
                .where(ReportRun.id == run_id, ReportRun.active.is_not(None))
                .values(**values)
            )
            if done.rowcount != 1:
                return False
            run = s.get(ReportRun, run_id)
            owner = s.get(Report, run.report_id).owner
            self._pin(s, owner, ids, RUN_PIN_PREFIX + run_id)
            if status == "done" and notebook is not None:
                sharing.publish_run(s, run.report_id, run.number, notebook,
                                    policy.loads(run.environment, {}), values["finished"])
        return True

    def _pin(self, s, owner: str, ids: list[str], ref: str) -> None:
        owned = s.scalars(
            sa.select(Result.id).where(Result.id.in_(ids), Result.owner == owner)
        ).all() if ids else []
        for result_id in owned:
            if s.get(Pin, (result_id, ref)) is None:
                s.add(Pin(result_id=result_id, ref=ref, created=self.clock(), server=""))

    def _unpin_runs(self, s, report_id: str) -> None:
        ids = s.scalars(sa.select(ReportRun.id).where(ReportRun.report_id == report_id)).all()
        if ids:
            s.execute(sa.delete(Pin).where(Pin.ref.in_([RUN_PIN_PREFIX + i for i in ids])))

    def recover(self) -> list[str]:
        """Mark failed every run whose runner's lease ran out; returns their ids."""
        now = self.clock()
        with self.session() as s:
            stale = s.scalars(
                sa.select(ReportRun.id).where(
                    ReportRun.status == "running", ReportRun.lease_until < now
                )
            ).all()
        message = "the runner stopped during the run (service restarted or killed); the run was abandoned"
        return [i for i in stale if self.finish(i, "failed", error={"message": message})]

    def stranded(self, older_than: float) -> list[str]:
        """Runs still queued ``older_than`` seconds after they were asked for."""
        with self.session() as s:
            return list(s.scalars(
                sa.select(ReportRun.id).where(
                    ReportRun.status == "queued", ReportRun.created < self.clock() - older_than
                )
            ).all())

    def run(self, run_id: str) -> ReportRun:
        with self.session() as s:
            row = s.get(ReportRun, run_id)
        if row is None:
            raise NotFound(run_id)
        return row

    def runs(self, report_id: str, limit: int = 100) -> list[dict]:
        with self.session() as s:
            rows = s.scalars(
                sa.select(ReportRun).where(ReportRun.report_id == report_id)
                .order_by(ReportRun.number.desc()).limit(limit)
            ).all()
        return [run_json(r) for r in rows]

    def latest_good(self, report_id: str) -> ReportRun | None:
        with self.session() as s:
            return s.scalars(
                sa.select(ReportRun).where(ReportRun.report_id == report_id, ReportRun.status == "done")
                .order_by(ReportRun.number.desc()).limit(1)
            ).first()

    def running(self, owner: str | None = None) -> list[dict]:
        """Runs queued or going (of ``owner``'s reports), for the status page."""
        q = sa.select(ReportRun, Report.title, Report.owner).join(Report).where(ReportRun.active.is_not(None))
        if owner is not None:
            q = q.where(Report.owner == owner)
        with self.session() as s:
            rows = s.execute(q).all()
        return [{**run_json(r), "title": title, "owner": o} for r, title, o in rows]

    # ------------------------------------------------------------ schedules
    def due(self) -> list[tuple[str, float]]:
        now = self.clock()
        with self.session() as s:
            rows = s.execute(
                sa.select(Report.id, Report.next_fire).where(Report.next_fire <= now)
            ).all()
        return [(r.id, r.next_fire) for r in rows]

    def claim_fire(self, report_id: str, fire: float) -> bool:
        """Move ``next_fire`` on from ``fire`` (compare-and-set): True for the one claimer."""
        report = self.get(report_id)
        new = policy.after_fire(report.cron, report.timezone, max(self.clock(), fire))
        with self.session.begin() as s:
            done = s.execute(
                sa.update(Report).where(Report.id == report_id, Report.next_fire == fire)
                .values(next_fire=new)
            )
        return done.rowcount == 1
