"""Runs one report run end to end, as its owner, in the owner's named report server.

1. claim the queued run (one replica wins) and hold its lease;
2. start the owner's named server ``report-<id>`` with the report's recorded
   environment (the user_options it was shared with) through the Hub API;
3. ``POST api/civis/execute`` there (the notebook, its path, the run's
   parameter values, the time left): nbclient runs it in refresh mode through
   the owner's query cache;
4. follow it (cell i of n into the run row, renewing the lease; a cancel
   asked on any replica is passed on), collect the executed notebook;
5. finish the run (immutable from then on; its results pinned by the run);
6. stop the server — or keep it ``keep_warm`` seconds for the next run.

A run that cannot finish (the server would not start, the hub went away, the
time ran out) is finished ``failed``/``timeout`` with the reason: the report's
latest successful run stays what viewers see.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from jupyterhub_civis.service.reports import policy
from jupyterhub_civis.service.reports.hub import HubError


class RunLog:
    """The run's own log: what the owner reads next to an error."""

    def __init__(self, clock=time.time):
        self.lines: list[str] = []
        self.clock = clock

    def __call__(self, message: str) -> None:
        stamp = time.strftime("%H:%M:%S", time.gmtime(self.clock()))
        self.lines.append(f"{stamp} {message}")

    def text(self) -> str:
        return "\n".join(self.lines[-500:])


class ReportRunner:
    def __init__(self, *, store, hub, run_in_pool, runner_id: str, lease: float = 30,
                 poll: float = 5, start_timeout: float = 300, keep_warm: float = 0, log=None):
        self.store, self.hub, self.pool = store, hub, run_in_pool
        self.runner_id = runner_id
        self.lease, self.poll = lease, poll
        self.start_timeout, self.keep_warm = start_timeout, keep_warm
        self.log = log or logging.getLogger("jupyterhub_civis.service.reports")
        self.tasks: dict[str, asyncio.Task] = {}
        self._warm: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._busy: dict[tuple[str, str], int] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def launch(self, run_id: str) -> asyncio.Task:
        """Run ``run_id`` in the background (idempotent per run on this replica)."""
        task = self.tasks.get(run_id)
        if task is None or task.done():
            task = asyncio.ensure_future(self.run(run_id))
            self.tasks[run_id] = task
            task.add_done_callback(lambda _: self.tasks.pop(run_id, None))
        return task

    async def run(self, run_id: str) -> None:
        if not await self.pool(self.store.claim, run_id, self.runner_id, self.lease):
            return  # another replica has it, or it was cancelled while queued
        row = await self.pool(self.store.run, run_id)
        report = await self.pool(self.store.get, row.report_id)
        log = RunLog()
        log(f"run {row.number} of {report.title!r} ({row.trigger}{' by ' + row.triggered_by if row.triggered_by else ''})")
        deadline = time.monotonic() + report.timeout
        key = (report.owner, policy.server_name(report.id))
        self._use(key)
        progress = {"cell": 0, "cells": 0, "cancel": asyncio.Event()}
        keeper = asyncio.ensure_future(self._keep_lease(row.id, progress))
        try:
            outcome = await asyncio.wait_for(
                self._execute(report, row, log, deadline, progress), report.timeout
            )
        except TimeoutError:
            outcome = dict(status="timeout", error={"message": f"the run took longer than {report.timeout:g} s"})
        except HubError as e:
            outcome = dict(status="failed", error={"message": str(e)})
        except Exception as e:
            self.log.exception("report run %s failed", run_id)
            outcome = dict(status="failed", error={"message": f"{type(e).__name__}: {e}"})
        finally:
            keeper.cancel()
        if outcome.get("error"):
            log(f"{outcome['status']}: {outcome['error']['message']}")
        else:
            log("done")
        finished = await self.pool(self.store.finish, run_id, log=log.text(), **outcome)
        if not finished:
            self.log.warning("report run %s was finished elsewhere (lease lost)", run_id)
        await self._release(key, report.id)

    async def _keep_lease(self, run_id: str, progress: dict) -> None:
        """Renew the run's lease (with its progress) until cancelled; flag a cancel request."""
        while True:
            going = await self.pool(
                self.store.progress, run_id, self.runner_id, self.lease,
                cell=progress["cell"], cells=progress["cells"],
            )
            if not going:
                progress["cancel"].set()
            await asyncio.sleep(min(self.lease / 3, self.poll))

    async def _execute(self, report, row, log, deadline, progress) -> dict:
        options = policy.loads(row.environment, {})
        log(f"starting server {report.owner}/{policy.server_name(report.id)} with {json.dumps(options)}")
        async with self._lock((report.owner, policy.server_name(report.id))):
            model = await self.hub.start_server(
                report.owner, policy.server_name(report.id), options,
                min(self.start_timeout, max(deadline - time.monotonic(), 1)),
            )
        log("server ready; executing")
        status = await self.hub.execute(model, {
            "path": report.path,
            "notebook": json.loads(report.notebook),
            "parameters": policy.loads(row.parameters, {}),
            "timeout": max(deadline - time.monotonic(), 1),
            "mode": "refresh",
        })
        cancelled = False
        while status["state"] == "running":
            if (status["cell"], status["cells"]) != (progress["cell"], progress["cells"]):
                progress.update(cell=status["cell"], cells=status["cells"])
                if not await self.pool(
                    self.store.progress, row.id, self.runner_id, self.lease,
                    cell=status["cell"], cells=status["cells"],
                ):
                    progress["cancel"].set()
            if progress["cancel"].is_set() and not cancelled:
                log("cancel requested")
                cancelled = True
                await self.hub.cancel(model, status["id"])
            wait = min(self.poll, max(self.lease / 3, 0.1))
            status = await self.hub.execution(model, status["id"], status["version"], wait)
        executed = await self.hub.executed_notebook(model, status["id"])
        log(f"executed {status['cell']} of {status['cells']} code cells in {status['duration']:.1f} s")
        state = {"done": "done", "timeout": "timeout", "cancelled": "cancelled"}.get(status["state"], "failed")
        return dict(
            status=state,
            notebook=json.dumps(executed["notebook"]).encode(),
            result_ids=status["result_ids"],
            error=status.get("error"),
            cell=status["cell"],
            cells=status["cells"],
        )

    # ------------------------------------------------------------ server lifetime
    def _lock(self, key) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def _use(self, key) -> None:
        self._busy[key] = self._busy.get(key, 0) + 1
        timer = self._warm.pop(key, None)
        if timer is not None:
            timer.cancel()

    async def _release(self, key, report_id: str) -> None:
        self._busy[key] -= 1
        if self._busy[key]:
            return
        del self._busy[key]
        if self.keep_warm > 0:
            loop = asyncio.get_running_loop()
            self._warm[key] = loop.call_later(
                self.keep_warm, lambda: asyncio.ensure_future(self._stop(key, report_id))
            )
        else:
            await self._stop(key, report_id)

    async def _stop(self, key, report_id: str | None = None) -> None:
        """Stop a report server no run uses: none of this replica's (checked under the lock
        its runs take to start it), and none queued or going on another replica."""
        self._warm.pop(key, None)
        async with self._lock(key):
            if self._busy.get(key):
                return
            if report_id and await self.pool(self.store.active_run, report_id):
                return
            try:
                await self.hub.stop_server(*key)
            except HubError as e:
                self.log.warning("stopping report server %s/%s: %s", *key, e)

    async def close(self) -> None:
        for timer in self._warm.values():
            timer.cancel()
        for key in list(self._warm):
            await self._stop(key)
