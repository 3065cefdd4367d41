"""The report scheduler: fires schedules, recovers abandoned runs, starts queued runs.

Every replica runs one; each ``tick`` (every ``interval`` seconds, or called
by a test with its own clock):

1. marks failed the runs whose runner's lease ran out (``store.recover``);
2. for each report whose ``next_fire`` has come, claims the fire by
   compare-and-set — exactly one replica wins it — and starts a run (single
   flight: if one is already going, the fire joins it). Missed fires collapse
   into one run (``policy`` states the catch-up rule);
3. hands every run it started to the runner.

The clock is the store's (``ReportStore.clock``), so a test moves time by
giving the store another clock — nothing sleeps minutes.
"""

from __future__ import annotations

import asyncio
import logging


class Scheduler:
    def __init__(self, *, store, runner, run_in_pool, interval: float = 10, log=None):
        self.store, self.runner, self.pool = store, runner, run_in_pool
        self.interval = interval
        self.log = log or logging.getLogger("jupyterhub_civis.service.reports")
        self._task: asyncio.Task | None = None

    async def tick(self) -> list[str]:
        """One round; returns the ids of runs this replica started for schedules."""
        recovered = await self.pool(self.store.recover)
        if recovered:
            self.log.warning("marked %d abandoned report run(s) failed", len(recovered))
        for run_id in await self.pool(self.store.stranded, self.runner.lease):
            self.runner.launch(run_id)  # queued, but the replica that queued it is gone
        started = []
        for report_id, fire in await self.pool(self.store.due):
            if not await self.pool(self.store.claim_fire, report_id, fire):
                continue  # another replica fired it
            run = await self.pool(self.store.start_run, report_id, "schedule", "", None)
            if run.new:
                started.append(run.run["id"])
                self.runner.launch(run.run["id"])
        return started

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                self.log.exception("report scheduler round failed")
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

