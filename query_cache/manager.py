"""The query manager: decides, runs (single-flight), tracks status, pins.

Runs on the server's asyncio loop; warehouse work happens in worker threads
and reports back through ``loop.call_soon_threadsafe``. Store calls (which may
reach the Hub service over the network) run in a thread pool of their own, so
they never block the loop and never wait behind long warehouse queries. No tornado imports:
the handlers and the ExtensionApp inject what it needs from jupyter_server
(how to find a kernel's notebook, how to read a notebook's metadata).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from jupyterhub_civis.errors import InvalidInput
from jupyterhub_civis.query_cache import keys, legacy_keys, modes, pins
from jupyterhub_civis.query_cache.notebook_pins import NotebookPins
from jupyterhub_civis.query_cache.pool import SessionPool
from jupyterhub_civis.query_cache.records import (  # noqa: F401 (re-exported)
    CANCELLED,
    DONE,
    FAILED,
    FETCHING,
    FINAL,
    QUEUED,
    RUNNING,
    STORING,
    LoopUpdates,
    QueryRecord,
    inline_bytes,
)
from jupyterhub_civis.query_cache.store import ResultStore, ResultTooLarge, StoredResult
from jupyterhub_civis.query_cache.warehouse import (
    Cancelled,
    Connection,
    WarehouseError,
    WarehouseUnreachable,
    execution_for,
)


class _Run:
    """One warehouse execution shared by every identical concurrent caller."""

    def __init__(self, key, connection: Connection, sql, params, pool: SessionPool):
        self.key, self.connection, self.sql, self.params = key, connection, sql, params
        self.execution = execution_for(connection, pool)
        self.subscribers: list[QueryRecord] = []
        self.answered = False  # its subscribers got the stored result


class QueryManager(NotebookPins):
    def __init__(
        self,
        *,
        store: ResultStore,
        connections: Mapping[str, Connection],
        default_mode: str = modes.REFRESH,
        max_result_bytes: int | None = None,
        max_workers: int = 4,
        history_limit: int = 200,
        notebook_for_kernel: Callable[[str], Awaitable[str | None]] | None = None,
        notebook_metadata: Callable[[str], Awaitable[dict | None]] | None = None,
        log: logging.Logger | None = None,
        pool: SessionPool | None = None,
    ):
        self.store = store
        self.pool = pool or SessionPool()
        self.connections = dict(connections)
        self.default_mode = default_mode
        self.max_result_bytes = max_result_bytes
        self.history_limit = history_limit
        self.notebook_for_kernel = notebook_for_kernel
        self.notebook_metadata = notebook_metadata
        self.log = log or logging.getLogger(__name__)
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers, thread_name_prefix="civis-query"
        )
        self.store_executor = concurrent.futures.ThreadPoolExecutor(
            8, thread_name_prefix="civis-store"
        )
        self.records: OrderedDict[str, QueryRecord] = OrderedDict()
        self.inflight: dict[str, _Run] = {}
        # notebook path -> key -> pin (what the pre-save hook writes)
        self.notebook_pins: dict[str, dict[str, dict]] = {}
        # notebook path -> "analysis" | "report", set from the kernel, saved by the hook
        self.notebook_deliverables: dict[str, str] = {}
        # notebook path -> mode its queries run in while a run executes it (a report
        # refreshes), in place of the notebook's own default; a call's mode still wins
        self.forced_modes: dict[str, str] = {}

    # ---------------------------------------------------------------- submit
    async def submit(self, body: Mapping[str, Any]) -> QueryRecord:
        sql = body.get("sql")
        if not isinstance(sql, str) or not sql.strip():
            raise InvalidInput("sql", "must be a non-empty string")
        name = body.get("connection") or "default"
        if not isinstance(name, str) or name not in self.connections:
            known = ", ".join(sorted(self.connections)) or "none configured"
            raise InvalidInput("connection", f"unknown connection {name!r} (known: {known})")
        connection = self.connections[name]
        params = body.get("params")
        connection.check_params(params)
        call_mode = modes.validate_mode(body.get("mode"))
        max_age = modes.validate_max_age(body.get("max_age"))

        notebook = body.get("notebook")
        if notebook is not None and not isinstance(notebook, str):
            raise InvalidInput("notebook", "must be a notebook path")
        kernel_id = body.get("kernel_id")
        if notebook is None and kernel_id and self.notebook_for_kernel:
            notebook = await self.notebook_for_kernel(kernel_id)

        metadata = (
            await self.notebook_metadata(notebook)
            if (notebook and self.notebook_metadata)
            else None
        )
        if notebook in self.notebook_deliverables:  # set since the last save
            civis = dict((metadata or {}).get("jupyterhub_civis") or {})
            civis["deliverable"] = self.notebook_deliverables[notebook]
            civis.pop("query_mode", None)
            metadata = {**(metadata or {}), "jupyterhub_civis": civis}
        notebook_mode = self.forced_modes.get(notebook) if notebook else None
        mode = modes.resolve_mode(
            call_mode, notebook_mode or modes.notebook_default_mode(metadata), self.default_mode
        )

        try:
            key = keys.cache_key(
                connection_identity=connection.key_identity(),
                principal=connection.principal(),
                sql=sql,
                params=params,
                settings=connection.settings,
            )
        except TypeError as e:
            raise InvalidInput("params", str(e)) from None
        except WarehouseUnreachable as e:
            raise InvalidInput("connection", str(e)) from None

        record = QueryRecord(
            sql=sql,
            params=params,
            connection=name,
            mode=mode,
            max_age=max_age,
            notebook=notebook,
            key=key,
        )
        self._remember(record)

        pinned_id = self._pinned_result(notebook, key, metadata)
        if pinned_id is None and mode == modes.REPRODUCIBLE:
            pinned_id = legacy_keys.legacy_pin(metadata, connection, sql, params)
        pinned = (
            await self._in_store_thread(self.store.get, pinned_id)
            if (pinned_id and mode == modes.REPRODUCIBLE)
            else None
        )
        latest = (
            await self._in_store_thread(self.store.latest, key) if max_age is not None else None
        )
        decision = modes.decide(
            mode,
            pinned_result_id=pinned_id,
            pinned_available=pinned is not None,
            latest_result_id=latest.result_id if latest else None,
            latest_age=(time.time() - latest.created) if latest else None,
            max_age=max_age,
        )
        if decision.action == "pinned":
            self._finish_hit(record, pinned)
        elif decision.action == "reuse" and (
            reused := await self._in_store_thread(self.store.get, latest.result_id)
        ):
            self._finish_hit(record, reused)
        elif decision.action == "missing-pin":
            self._fail(
                record,
                f"this notebook pins result {pinned_id} for this query, but the result store no "
                "longer has it; run with mode='refresh' to replace the pin",
            )
        else:
            self._start_or_join(record, connection)
        return record

    async def set_deliverable(self, body: Mapping[str, Any]) -> dict:
        """The kernel's notebook becomes an analysis or a report from now on (and in
        its metadata when next saved)."""
        deliverable = modes.validate_deliverable(body.get("deliverable"))
        notebook = body.get("notebook")
        if notebook is not None and not isinstance(notebook, str):
            raise InvalidInput("notebook", "must be a notebook path")
        kernel_id = body.get("kernel_id")
        if notebook is None and isinstance(kernel_id, str) and self.notebook_for_kernel:
            notebook = await self.notebook_for_kernel(kernel_id)
        if not notebook:
            raise InvalidInput(
                "kernel_id", "this kernel belongs to no notebook session: open the notebook"
            )
        self.notebook_deliverables[notebook] = deliverable
        mode = modes.DELIVERABLE_MODES[deliverable]
        return {"notebook": notebook, "deliverable": deliverable, "mode": mode}

    async def _in_store_thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.store_executor, fn, *args)

    def _pinned_result(self, notebook, key, metadata) -> str | None:
        if not notebook:
            return None
        mem = self.notebook_pins.get(notebook, {}).get(key)
        if mem:
            return mem["result_id"]
        disk = pins.pins_from_metadata(metadata).get(key)
        return disk["result_id"] if disk else None

    def _remember(self, record):
        self.records[record.id] = record
        while len(self.records) > self.history_limit:
            oldest_id = next(iter(self.records))
            if self.records[oldest_id].state not in FINAL:
                break
            self.records.popitem(last=False)

    def _finish_hit(self, record: QueryRecord, stored: StoredResult):
        record.cache = "hit"
        record.result = stored
        record.rows, record.bytes = stored.rows, stored.size
        record.state = DONE
        record.finished = time.time()
        self._record_pin(record)
        record.changed()

    def _fail(self, record, message, state=FAILED):
        record.state = state
        record.error = message
        record.finished = time.time()
        record.changed()

    # ---------------------------------------------------------------- runs
    def _start_or_join(self, record: QueryRecord, connection: Connection):
        record.cache = "miss"
        run = self.inflight.get(record.key)
        if run is not None:
            record.shared = True
            run.subscribers.append(record)
            record.run = run
            record.state = run.subscribers[0].state
            record.changed()
            return
        run = _Run(
            record.key, connection, keys.statement_text(record.sql), record.params, self.pool
        )
        run.subscribers.append(record)
        record.run = run
        self.inflight[record.key] = run
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, self._work, run, loop)
        future.add_done_callback(lambda f: self._run_finished(run, f))

    def _set(self, run: _Run, notify: bool = True, **fields):
        """Update every live subscriber; ``notify`` wakes waiters (state changes only:
        row/byte progress is read by the next poll, which keeps polling cheap)."""
        for record in run.subscribers:
            if record.state in FINAL:
                continue
            for k, v in fields.items():
                setattr(record, k, v)
            if notify:
                record.changed()

    def _work(self, run: _Run, loop: asyncio.AbstractEventLoop) -> StoredResult:
        post = LoopUpdates(loop).post
        execution = run.execution
        try:
            if execution.cancelled.is_set():
                raise Cancelled()
            post(lambda: self._set(run, state=RUNNING))
            schema, batches = execution.run(run.sql, run.params)
            post(lambda: self._set(run, state=FETCHING))

            def tracked():
                yield from batches
                post(lambda: self._set(run, state=STORING))

            def progress(rows, nbytes):
                post(lambda: self._set(run, notify=False, rows=rows, bytes=nbytes))

            stored = self.store.put(
                run.key,
                schema,
                tracked(),
                max_bytes=self.max_result_bytes,
                on_progress=progress,
                sql=run.sql,
                connection=run.connection.name,
                # the notebooks waiting now pin it from the start (their pin
                # calls after completion are then no-ops, and late joiners pin then)
                pins=[
                    r.notebook for r in list(run.subscribers) if r.notebook and r.state not in FINAL
                ],
            )
            # the answer first; the session's reset and return to the pool (close) follow
            execution.finishing()
            inline = inline_bytes(stored)
            post(lambda: self._answer(run, stored, inline))
            return stored
        finally:
            execution.close()

    def _answer(self, run: _Run, stored: StoredResult, inline: bytes | None = None):
        if run.answered:
            return
        run.answered = True
        if self.inflight.get(run.key) is run:
            del self.inflight[run.key]
        now = time.time()
        pinning = []
        for record in run.subscribers:
            if record.state in FINAL:
                continue
            record.result, record.inline = stored, inline
            record.rows, record.bytes = stored.rows, stored.size
            record.state = DONE
            record.finished = now
            pinning.append(self._record_pin(record))
            record.changed()
        # after the waiting handlers' answers (queued before it), not competing with them
        asyncio.get_running_loop().call_soon(
            self.store_executor.submit, self._evict, [f for f in pinning if f is not None]
        )

    def _run_finished(self, run: _Run, future: asyncio.Future):
        if (exc := future.exception() if not future.cancelled() else Cancelled()) is None:
            return self._answer(run, future.result())  # a no-op once answered
        if self.inflight.get(run.key) is run:
            del self.inflight[run.key]
        if isinstance(exc, Cancelled):
            message, state = "cancelled", CANCELLED
        elif isinstance(exc, ResultTooLarge):
            state = FAILED
            message = (
                f"the result is larger than the limit of {self.max_result_bytes} bytes "
                "(QueryCache.max_result_bytes); add a LIMIT or aggregate in SQL"
            )
        elif isinstance(exc, WarehouseError):
            message, state = str(exc), FAILED
            for record in run.subscribers:
                if record.state not in FINAL:
                    record.sqlstate = exc.sqlstate
        else:
            self.log.error("query run failed", exc_info=exc)
            message, state = f"internal error: {type(exc).__name__}", FAILED
        for record in run.subscribers:
            if record.state not in FINAL:
                self._fail(record, message, state)

    def _evict(self, after: list[concurrent.futures.Future]):
        concurrent.futures.wait(after)  # a result pinned just now must count as pinned
        try:
            evicted = self.store.evict()
            if evicted:
                self.log.info("query cache: evicted %d results", len(evicted))
        except Exception:
            self.log.exception("query cache eviction failed")

    # ---------------------------------------------------------------- cancel
    async def cancel(self, record: QueryRecord) -> None:
        if record.state in FINAL:
            return
        run = record.run
        self._fail(record, "cancelled", CANCELLED)
        if run is None:
            return
        if all(r.state in FINAL for r in run.subscribers):
            # nobody waits for this run any more: stop the warehouse query
            await asyncio.get_running_loop().run_in_executor(None, run.execution.cancel)

    async def wait_final(self, record: QueryRecord, timeout: float) -> None:
        """Return when the record is final or after ``timeout`` seconds."""
        # asyncio.timeout, not wait_for: the waiting handler resumes in the loop
        # iteration after the change instead of two later (no task in between)
        try:
            async with asyncio.timeout(timeout):
                while record.state not in FINAL:
                    await record._event.wait()
        except TimeoutError:
            return

    async def wait(self, record: QueryRecord, since_version: int | None, timeout: float) -> None:
        """Return when the record changed after ``since_version`` or after ``timeout`` seconds."""
        if since_version is None or record.version != since_version or record.state in FINAL:
            return
        try:
            async with asyncio.timeout(timeout):
                await record._event.wait()
        except TimeoutError:
            pass

    def shutdown(self):
        for run in list(self.inflight.values()):
            try:
                run.execution.cancel()
            except Exception:
                pass
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.store_executor.shutdown(wait=False, cancel_futures=True)
        self.pool.close()
