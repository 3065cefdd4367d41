"""Schedules, single flight, leases and recovery on a real PostgreSQL database shared by
two "replicas" (two stores, two engines, two schedulers), with an injected clock."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import json
import uuid
from zoneinfo import ZoneInfo

import psycopg
import pytest
import sqlalchemy as sa

from jupyterhub_civis.errors import InvalidInput
from jupyterhub_civis.service.migrations import upgrade
from jupyterhub_civis.service.models import Pin, Result
from jupyterhub_civis.service.reports import policy
from jupyterhub_civis.service.reports.scheduler import Scheduler
from jupyterhub_civis.service.reports.store import RUN_PIN_PREFIX, ReportStore

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
NB = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db_url():
    name = f"civis_sched_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'create database "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f'drop database if exists "{name}" with (force)')


class Launches:
    """The runner's ``launch`` as the scheduler sees it: which runs it was handed."""

    lease = 30

    def __init__(self):
        self.runs: list[str] = []

    def launch(self, run_id):
        self.runs.append(run_id)


def replicas(db_url, clock, n=2):
    pool = concurrent.futures.ThreadPoolExecutor(8)

    def run_in_pool(fn, *args):
        return asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    out = []
    for _ in range(n):
        engine = sa.create_engine(db_url)
        upgrade(engine)
        store = ReportStore(engine, clock=clock)
        launches = Launches()
        out.append((store, launches, Scheduler(store=store, runner=launches, run_in_pool=run_in_pool)))
    return out


def request(cron="0 7 * * 1-5", timezone="Europe/Paris", **kw):
    return policy.ReportRequest(
        path="r.ipynb", notebook=NB, schedule={"cron": cron, "timezone": timezone}, **kw
    )


def paris(*args) -> float:
    return datetime.datetime(*args, tzinfo=ZoneInfo("Europe/Paris")).timestamp()


def test_cron_in_a_time_zone_across_daylight_saving():
    # Friday 2026-03-27 08:00 Paris: next weekday 07:00 is Monday 30th (after the DST change)
    assert policy.next_fire("0 7 * * 1-5", "Europe/Paris", paris(2026, 3, 27, 8)) == paris(2026, 3, 30, 7)
    assert policy.next_fire("0 7 * * *", "UTC", paris(2026, 3, 30, 7)) != paris(2026, 3, 30, 7)
    with pytest.raises(InvalidInput) as e:
        policy.check_cron("0 7 * *")
    assert e.value.field == "schedule.cron"
    with pytest.raises(InvalidInput) as e:
        policy.check_timezone("Mars/Olympus")
    assert e.value.field == "schedule.timezone"


async def test_two_replicas_fire_each_schedule_once(db_url):
    clock = Clock(paris(2026, 3, 26, 6, 59))
    (a, la, sa_), (b, lb, sb) = replicas(db_url, clock)
    reports = [a.create("ann", request(), 600)["id"] for _ in range(10)]
    assert await sa_.tick() == [] and await sb.tick() == []  # not yet 07:00

    clock.now = paris(2026, 3, 26, 7, 0, 1)
    first, second = await asyncio.gather(sa_.tick(), sb.tick())
    assert sorted(la.runs + lb.runs) == sorted(first + second)
    assert len(first) + len(second) == 10  # one run per report, whichever replica won it
    for report_id in reports:
        assert len(a.runs(report_id)) == 1
        assert a.get(report_id).next_fire == paris(2026, 3, 27, 7)
    # the same minute again: nothing new
    assert await asyncio.gather(sa_.tick(), sb.tick()) == [[], []]


async def test_missed_fires_collapse_into_one_run(db_url):
    clock = Clock(paris(2026, 3, 2, 6))  # Monday
    ((store, launches, scheduler),) = replicas(db_url, clock, n=1)
    report_id = store.create("ann", request(), 600)["id"]
    clock.now = paris(2026, 3, 6, 12)  # down all week: five fires missed
    assert len(await scheduler.tick()) == 1
    assert store.get(report_id).next_fire == paris(2026, 3, 9, 7)  # the next Monday
    assert await scheduler.tick() == []


def test_ten_concurrent_refreshes_make_one_run(db_url):
    clock = Clock(1_000_000.0)
    (a, _, _), (b, _, _) = replicas(db_url, clock)
    report_id = a.create("ann", request(), 600)["id"]
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        started = list(pool.map(
            lambda i: (a if i % 2 else b).start_run(report_id, "user", "ann", None), range(10)
        ))
    assert sum(s.new for s in started) == 1
    assert len({s.run["id"] for s in started}) == 1
    assert len(a.runs(report_id)) == 1
    # once it is final, the next refresh is a new run
    run_id = started[0].run["id"]
    assert a.claim(run_id, "r1", 30) and not b.claim(run_id, "r2", 30)
    assert a.finish(run_id, "done", notebook=b"{}")
    again = b.start_run(report_id, "user", "ann", None)
    assert again.new and again.run["number"] == 2


def test_a_killed_runner_fails_its_run_and_the_last_good_run_stays(db_url):
    clock = Clock(2_000_000.0)
    (a, _, _), (b, _, _) = replicas(db_url, clock)
    report_id = a.create("ann", request(), 600)["id"]
    with a.session.begin() as s:
        s.add(Result(id="a" * 32, owner="ann", key="k", sql="", connection="", rows=1, size=1,
                     created=clock(), last_access=clock()))
    good = a.start_run(report_id, "user", "ann", None).run["id"]
    assert a.claim(good, "replica-a", 30)
    assert a.finish(good, "done", notebook=b'{"cells": []}', result_ids=["a" * 32, "b" * 32])
    with a.session() as s:  # the run pins the results it stored (unknown ids are skipped)
        assert [p.ref for p in s.scalars(sa.select(Pin))] == [RUN_PIN_PREFIX + good]

    lost = a.start_run(report_id, "schedule", "", None).run["id"]
    assert a.claim(lost, "replica-a", 30)
    assert a.progress(lost, "replica-a", 30, cell=3, cells=9)
    clock.now += 20
    assert b.recover() == []  # the lease still holds
    clock.now += 20  # replica-a was killed: no renewal
    assert b.recover() == [lost]
    failed = b.run(lost)
    assert failed.status == "failed" and "runner stopped" in json.loads(failed.error)["message"]
    assert not a.finish(lost, "done", notebook=b"{}")  # a final run never changes
    assert not a.progress(lost, "replica-a", 30, cell=4, cells=9)
    assert b.latest_good(report_id).id == good
    assert b.start_run(report_id, "user", "ann", None).new  # the next run works


def test_cancel_before_and_during_a_run(db_url):
    clock = Clock(3_000_000.0)
    ((store, _, _),) = replicas(db_url, clock, n=1)
    report_id = store.create("ann", request(), 600)["id"]
    queued = store.start_run(report_id, "user", "ann", None).run["id"]
    store.request_cancel(queued)
    assert store.run(queued).status == "cancelled" and not store.claim(queued, "r", 30)
    running = store.start_run(report_id, "user", "ann", None).run["id"]
    assert store.claim(running, "r", 30)
    store.request_cancel(running)
    assert store.progress(running, "r", 30) is False  # the runner learns it at its next renewal
