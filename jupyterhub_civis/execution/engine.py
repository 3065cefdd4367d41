"""One notebook execution in this server: a kernel of a notebook session, nbclient, progress.

The kernel belongs to a session of the notebook's path (as when a person opens
it), so the query cache knows which notebook each query comes from: it pins
the results under that path and, while the run lasts, runs the notebook's
queries in the run's mode (``QueryManager.forced_modes``; a report refreshes).
Cells run one by one through nbclient; ``Execution`` tells which (cell i of n)
and keeps the executed notebook, the failing cell and its output, and the ids
of the results the run's queries stored. No tornado here: the handlers and the
extension app inject the server's session and kernel managers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

import nbformat
from jupyter_server.utils import ensure_async
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from jupyterhub_civis.execution import parameters as params

RUNNING, DONE, FAILED, CANCELLED, TIMEOUT = "running", "done", "failed", "cancelled", "timeout"
FINAL = (DONE, FAILED, CANCELLED, TIMEOUT)
MAX_OUTPUT_CHARS = 20_000


def _output_text(outputs: list) -> str:
    """What a person reads of a cell's outputs: streams, plain text, tracebacks."""
    parts = []
    for out in outputs or []:
        kind = out.get("output_type")
        if kind == "stream":
            parts.append(out.get("text", ""))
        elif kind == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
            parts.extend(out.get("traceback") or [])
        elif kind in ("execute_result", "display_data"):
            parts.append(str((out.get("data") or {}).get("text/plain", "")))
    text = "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)
    return text[-MAX_OUTPUT_CHARS:]


class Execution:
    """A run's state as the API shows it; changes wake long-polling readers."""

    def __init__(self, path: str, nb: dict, values: dict, mode: str, timeout: float):
        self.id = uuid.uuid4().hex
        self.path, self.mode, self.timeout = path, mode, timeout
        # read as a file is read: multi-line sources stored as lists of lines are joined
        self.nb = nbformat.reads(json.dumps(params.inject(nb, values)), as_version=4)
        self.parameters = {k: str(v) if not isinstance(v, (int, float, str, bool)) else v
                           for k, v in values.items()}
        self.code_cells = [i for i, c in enumerate(self.nb.cells) if c.cell_type == "code"]
        self.state = RUNNING
        self.cell = 0  # code cells started so far (1-based index of the running one)
        self.started = time.time()
        self.finished: float | None = None
        self.error: dict | None = None
        self.result_ids: list[str] = []
        self.version = 0
        self.task: asyncio.Task | None = None
        self._event = asyncio.Event()

    def changed(self) -> None:
        self.version += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, since: int | None, timeout: float) -> None:
        if since is None or since != self.version or self.state in FINAL:
            return
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            pass

    def to_json(self) -> dict[str, Any]:
        end = self.finished or time.time()
        return {
            "id": self.id,
            "path": self.path,
            "mode": self.mode,
            "state": self.state,
            "cell": self.cell,
            "cells": len(self.code_cells),
            "parameters": self.parameters,
            "started": self.started,
            "finished": self.finished,
            "duration": round(end - self.started, 3),
            "error": self.error,
            "result_ids": self.result_ids,
            "version": self.version,
        }

    def executed_notebook(self) -> dict:
        return dict(self.nb)


class Runner:
    """Runs executions on the server's own kernels. ``sessions``/``kernels`` are the
    server's session and kernel managers; ``queries`` the query cache's manager (or None)."""

    def __init__(self, *, sessions, kernels, queries=None, kernel_name="python3",
                 startup_timeout=120.0, history_limit=50, log=None):
        self.sessions, self.kernels, self.queries = sessions, kernels, queries
        self.kernel_name = kernel_name
        self.startup_timeout = startup_timeout
        self.history_limit = history_limit
        self.executions: dict[str, Execution] = {}
        self.log = log or logging.getLogger(__name__)

    def start(self, path: str, nb: dict, values: dict, mode: str, timeout: float) -> Execution:
        execution = Execution(path, nb, values, mode, timeout)
        self.executions[execution.id] = execution
        while len(self.executions) > self.history_limit:
            oldest = next(iter(self.executions.values()))
            if oldest.state not in FINAL:
                break
            self.executions.pop(oldest.id)
        execution.task = asyncio.ensure_future(self._run(execution))
        return execution

    async def cancel(self, execution: Execution) -> None:
        if execution.state in FINAL or execution.task is None:
            return
        execution.task.cancel()
        try:
            await execution.task
        except asyncio.CancelledError:
            pass

    def running(self) -> list[Execution]:
        return [e for e in self.executions.values() if e.state not in FINAL]

    async def _run(self, execution: Execution) -> None:
        deadline = time.monotonic() + execution.timeout
        try:
            await asyncio.wait_for(self._execute(execution, deadline), execution.timeout)
            self._finish(execution, DONE)
        except TimeoutError:
            self._finish(execution, TIMEOUT, message=f"the run took longer than {execution.timeout:g} s")
        except asyncio.CancelledError:
            self._finish(execution, CANCELLED, message="cancelled")
        except (CellExecutionError, DeadKernelError, CellTimeoutError) as e:
            self._fail_cell(execution, e, late=time.monotonic() >= deadline)
        except Exception as e:
            if time.monotonic() >= deadline:  # e.g. the kernel not ready in the time left
                message = f"the run took longer than {execution.timeout:g} s ({e})"
                return self._finish(execution, TIMEOUT, message=message)
            self.log.exception("civis execute: %s failed", execution.path)
            self._finish(execution, FAILED, message=f"{type(e).__name__}: {e}")

    def _fail_cell(self, execution: Execution, error: Exception, late: bool = False) -> None:
        index = execution.code_cells[execution.cell - 1] if execution.cell else None
        cell = execution.nb.cells[index] if index is not None else None
        output = _output_text(cell.outputs) if cell is not None else ""
        timed_out = late or isinstance(error, CellTimeoutError)
        if isinstance(error, DeadKernelError):
            output = (output + "\n" + str(error)).strip()
        message = str(getattr(error, "ename", "") or type(error).__name__)
        if timed_out:
            message = f"the run took longer than {execution.timeout:g} s"
        self._finish(
            execution,
            TIMEOUT if timed_out else FAILED,
            message=message,
            cell=execution.cell,
            source=cell.source if cell is not None else "",
            output=output,
        )

    def _finish(self, execution: Execution, state: str, message: str = "", **detail) -> None:
        execution.state = state
        execution.finished = time.time()
        if state != DONE:
            execution.error = {"message": message, **detail}
        execution.changed()

    async def _execute(self, execution: Execution, deadline: float) -> None:
        forced = getattr(self.queries, "forced_modes", None)
        if forced is not None:
            forced[execution.path] = execution.mode
        kernel_name = (execution.nb.metadata.get("kernelspec") or {}).get("name") or self.kernel_name
        session = await ensure_async(
            self.sessions.create_session(
                path=execution.path, name=execution.path, type="notebook", kernel_name=kernel_name
            )
        )
        kernel_id = session["kernel"]["id"]
        kc = None
        try:
            km = self.kernels.get_kernel(kernel_id)
            client = NotebookClient(
                execution.nb, km=km, kernel_name=kernel_name, allow_errors=False,
                record_timing=True,
            )
            kc = km.client()
            client.kc = kc
            await ensure_async(kc.start_channels())
            await kc.wait_for_ready(timeout=min(self.startup_timeout, _left(deadline)))
            kc.allow_stdin = False
            client.reset_execution_trackers()
            for n, index in enumerate(execution.code_cells, start=1):
                execution.cell = n
                execution.changed()
                # the run's own deadline (asyncio) comes first; this only backs it up
                client.timeout = int(_left(deadline)) + 5
                await client.async_execute_cell(
                    execution.nb.cells[index], index, execution_count=n
                )
            execution.result_ids = self._result_ids(execution)
            self._record_pins(execution)
        except asyncio.CancelledError:
            await _quietly(self.kernels.interrupt_kernel(kernel_id))
            raise
        finally:
            if forced is not None:
                forced.pop(execution.path, None)
            if kc is not None:
                kc.stop_channels()
            await _quietly(self.sessions.delete_session(session["id"]))

    def _result_ids(self, execution: Execution) -> list[str]:
        """Results stored or reused by this run's queries, in the order they were asked."""
        records = getattr(self.queries, "records", {}) or {}
        ids = []
        for record in list(records.values()):
            if record.notebook != execution.path or record.submitted < execution.started:
                continue
            if record.result is not None and record.result.result_id not in ids:
                ids.append(record.result.result_id)
        return ids

    def _record_pins(self, execution: Execution) -> None:
        """The executed notebook names its results as a saved one would (a copy of it
        re-runs reproducibly from them)."""
        if self.queries is None:
            return
        pins = self.queries.pins_for(execution.path)
        if pins:
            civis = execution.nb.metadata.setdefault("jupyterhub_civis", {})
            civis.setdefault("queries", {}).update(pins)


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.001)


async def _quietly(awaitable) -> None:
    try:
        await ensure_async(awaitable)
    except Exception:
        logging.getLogger(__name__).debug("civis execute: clean-up step failed", exc_info=True)
