"""Report links in the civis service: settings (``c.Reports.<trait>``) and wiring.

The service builds one ``Reports`` (store, runner, scheduler) at start; the
handlers in ``handlers.py`` reach it as ``settings["reports"]``. The sharing
layer connects to it through ``start_run`` / ``store`` (a report is a share of
kind "report" whose runs are its versions).
"""

from __future__ import annotations

import os
import uuid

from traitlets import Float, Int, Type, Unicode, default
from traitlets.config import LoggingConfigurable

from jupyterhub_civis import envvars
from jupyterhub_civis.service.reports.hub import HubClient
from jupyterhub_civis.service.reports.runner import ReportRunner
from jupyterhub_civis.service.reports.scheduler import Scheduler
from jupyterhub_civis.service.reports.store import ReportStore


class Reports(LoggingConfigurable):
    proxy_url = Unicode(
        help="""Where the service reaches users' servers: the Hub's proxy, e.g.
        ``http://proxy-public`` on Kubernetes. Default: $CIVIS_SERVICE_PROXY_URL
        (``declare_reports`` sets it from the hub's own ip and port).""",
    ).tag(config=True)

    @default("proxy_url")
    def _default_proxy_url(self):
        return os.environ.get(envvars.SERVICE_PROXY_URL, "http://127.0.0.1:8000")

    default_timeout = Float(
        3600, help="Seconds a report run may take (server start included) unless its report says."
    ).tag(config=True)

    max_notebook_bytes = Int(
        64 << 20,
        help="""Largest notebook (JSON, outputs included) a report may be created from, in
        bytes (default 64 MiB); a larger one is refused with 413.""",
    ).tag(config=True)

    keep_warm_seconds = Float(
        0,
        help="""Seconds a report's server stays up after a run, ready for the next one (runs
        of frequent reports then skip the server start). 0: stop it at once.""",
    ).tag(config=True)

    server_start_timeout = Float(
        300, help="Seconds to wait for a report's server to be ready before the run fails."
    ).tag(config=True)

    lease_seconds = Float(
        30,
        help="""A run's lease: its replica renews it every third of this while the run goes.
        A run whose lease ran out (its replica was killed) is marked failed by any replica.""",
    ).tag(config=True)

    poll_seconds = Float(5, help="Longest wait between two progress checks of a running run.").tag(
        config=True
    )

    schedule_interval = Float(
        10, help="Seconds between scheduler rounds (schedules fire at most this late)."
    ).tag(config=True)

    hub_client_class = Type(
        HubClient,
        help="How runs reach the Hub and servers (a ``reports.hub.HubClient`` subclass).",
    ).tag(config=True)

    def build(self, engine, run_in_pool) -> Reports:
        self.store = ReportStore(engine)
        self.runner_id = f"{os.uname().nodename[:40]}-{uuid.uuid4().hex[:8]}"
        self.hub = self.hub_client_class(
            os.environ.get("JUPYTERHUB_API_URL", ""), self.proxy_url,
            os.environ.get("JUPYTERHUB_API_TOKEN", ""),
        )
        self.runner = ReportRunner(
            store=self.store, hub=self.hub, run_in_pool=run_in_pool, runner_id=self.runner_id,
            lease=self.lease_seconds, poll=self.poll_seconds,
            start_timeout=self.server_start_timeout, keep_warm=self.keep_warm_seconds,
            log=self.log,
        )
        self.scheduler = Scheduler(
            store=self.store, runner=self.runner, run_in_pool=run_in_pool,
            interval=self.schedule_interval, log=self.log,
        )
        self.pool = run_in_pool
        return self

    async def start_run(self, report_id: str, trigger: str, by: str, parameters=None) -> dict:
        """Start (or join: ``joined``) a run of ``report_id``; the run's summary."""
        started = await self.pool(self.store.start_run, report_id, trigger, by, parameters)
        if started.new:
            self.runner.launch(started.run["id"])
        return {**started.run, "joined": not started.new}

    def start(self) -> None:
        self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        for task in list(self.runner.tasks.values()):
            task.cancel()
        await self.runner.close()
