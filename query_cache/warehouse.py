"""Arrow-native execution of one query on a named connection, with real cancel.

Drivers, by URL scheme:

- ``postgresql[+anything]://``: ADBC (``adbc-driver-postgresql``), streamed
  as Arrow record batches; cancel sends the PostgreSQL cancel request
  (``PQcancel``) and ``pg_cancel_backend`` for the query's backend.
- ``duckdb:///path``: DuckDB's own Arrow output (read-only); cancel interrupts.
- anything else: SQLAlchemy, rows converted to Arrow in chunks; cancel closes
  the DBAPI connection (best effort; the driver decides how fast it stops).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from jupyterhub_civis.query_cache.connection import (  # noqa: F401 (re-exported)
    Cancelled,
    Connection,
    WarehouseError,
    WarehouseUnreachable,
)


def execution_for(connection: Connection) -> Execution:
    if connection.backend in ("postgresql", "postgres"):
        return PostgresExecution(connection)
    if connection.backend == "duckdb":
        return DuckDBExecution(connection)
    return SQLAlchemyExecution(connection)


class Execution:
    """One query run. ``run`` (blocking, in a worker thread) returns the schema and
    a batch iterator; ``cancel`` may be called from any thread at any time."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self.cancelled = threading.Event()

    def run(self, sql: str, params: Any) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        raise NotImplementedError

    def cancel(self) -> None:
        self.cancelled.set()

    def close(self) -> None:
        pass

    def _check(self):
        if self.cancelled.is_set():
            raise Cancelled()

    def _error(self, exc: BaseException, *, connecting: bool) -> WarehouseError:
        msg = self.connection.scrub(str(exc).strip())
        if connecting:
            return WarehouseUnreachable(f"cannot reach warehouse {self.connection.name!r}: {msg}")
        return WarehouseError(msg)


class PostgresExecution(Execution):
    batch_size_hint_bytes = 4 << 20
    cancel_retry_seconds = 5.0

    def __init__(self, connection):
        super().__init__(connection)
        self._conn = None
        self._cursor = None
        self._pid = None
        self._uri = None
        self._finished = threading.Event()

    def _libpq_uri(self) -> str:
        url = self.connection.resolved_url()
        scheme, rest = url.split(":", 1)
        return "postgresql:" + rest

    def run(self, sql, params):
        import adbc_driver_postgresql.dbapi as pg

        self._uri = self._libpq_uri()
        try:
            self._check()
            self._conn = pg.connect(self._uri, autocommit=True)
            with self._conn.cursor() as cur:
                cur.execute("select pg_backend_pid()")
                self._pid = cur.fetchone()[0]
                for name, value in self.connection.settings.items():
                    cur.execute("select set_config($1, $2, false)", (name, str(value)))
        except Exception as e:
            self.close()
            raise self._error(e, connecting=True) from None
        self._check()
        self._cursor = self._conn.cursor()
        self._cursor.adbc_statement.set_options(
            **{"adbc.postgresql.batch_size_hint_bytes": str(self.batch_size_hint_bytes)}
        )
        try:
            self._cursor.execute(sql, tuple(params) if params else None)
            reader = self._cursor.fetch_record_batch()
        except Exception as e:
            if self.cancelled.is_set():
                raise Cancelled() from None
            raise self._error(e, connecting=False) from None
        return reader.schema, self._batches(reader)

    def _batches(self, reader):
        try:
            for batch in reader:
                self._check()
                yield batch
        except Cancelled:
            raise
        except Exception as e:
            if self.cancelled.is_set():
                raise Cancelled() from None
            raise self._error(e, connecting=False) from None

    def cancel(self):
        super().cancel()
        # A cancel can race the statement being sent: repeat until the run ends.
        deadline = time.monotonic() + self.cancel_retry_seconds
        while True:
            self._cancel_once()
            if self._finished.wait(0.25) or time.monotonic() > deadline:
                return

    def _cancel_once(self):
        cursor, pid = self._cursor, self._pid
        if cursor is not None:
            try:
                cursor.adbc_cancel()
            except Exception:
                pass
        if pid is not None and self._uri:
            # belt and braces: the server-side cancel, on a separate connection
            try:
                import adbc_driver_postgresql.dbapi as pg

                with pg.connect(self._uri, autocommit=True) as c, c.cursor() as cur:
                    cur.execute("select pg_cancel_backend($1)", (pid,))
                    cur.fetchall()
            except Exception:
                pass

    def close(self):
        self._finished.set()
        for obj in (self._cursor, self._conn):
            if obj is not None:
                try:
                    obj.close()
                except Exception:
                    pass
        self._cursor = self._conn = None


class DuckDBExecution(Execution):
    batch_rows = 122_880

    def __init__(self, connection):
        super().__init__(connection)
        self._con = None

    def run(self, sql, params):
        import duckdb
        from sqlalchemy.engine import make_url

        try:
            url = make_url(self.connection.resolved_url())
            path = url.database or ":memory:"
            self._con = duckdb.connect(path, read_only=path != ":memory:")
            for name, value in self.connection.settings.items():
                self._con.execute(f"SET {name} = '{str(value).replace(chr(39), chr(39) * 2)}'")
        except Exception as e:
            self.close()
            raise self._error(e, connecting=True) from None
        self._check()
        try:
            relation = self._con.sql(sql, params=params) if params else self._con.sql(sql)
            if relation is None:
                raise ValueError("the statement returned no result set")
            if hasattr(relation, "to_arrow_reader"):  # duckdb >= 1.4
                reader = relation.to_arrow_reader(self.batch_rows)
            else:
                reader = relation.fetch_arrow_reader(self.batch_rows)
        except Exception as e:
            if self.cancelled.is_set():
                raise Cancelled() from None
            raise self._error(e, connecting=False) from None

        def batches():
            try:
                for b in reader:
                    self._check()
                    yield b
            except Cancelled:
                raise
            except Exception as e:
                if self.cancelled.is_set():
                    raise Cancelled() from None
                raise self._error(e, connecting=False) from None

        return reader.schema, batches()

    def cancel(self):
        super().cancel()
        if self._con is not None:
            try:
                self._con.interrupt()
            except Exception:
                pass

    def close(self):
        if self._con is not None:
            try:
                self._con.close()
            except Exception:
                pass
            self._con = None


class SQLAlchemyExecution(Execution):
    chunk_rows = 50_000

    def __init__(self, connection):
        super().__init__(connection)
        self._engine = None
        self._conn = None

    def run(self, sql, params):
        import sqlalchemy as sa

        try:
            self._engine = sa.create_engine(
                self.connection.resolved_url(), poolclass=sa.pool.NullPool
            )
            self._conn = self._engine.connect()
        except Exception as e:
            self.close()
            raise self._error(e, connecting=True) from None
        self._check()
        try:
            conn = self._conn.execution_options(stream_results=True)
            if isinstance(params, dict):
                result = conn.execute(sa.text(sql), params)
            else:
                result = conn.exec_driver_sql(sql, tuple(params or ()))
            columns = list(result.keys())
            first = result.fetchmany(self.chunk_rows)
        except Exception as e:
            if self.cancelled.is_set():
                raise Cancelled() from None
            raise self._error(e, connecting=False) from None
        first_batch = pa.RecordBatch.from_pydict(
            {c: [r[i] for r in first] for i, c in enumerate(columns)}
        )
        schema = first_batch.schema

        def batches():
            yield first_batch
            while True:
                self._check()
                try:
                    rows = result.fetchmany(self.chunk_rows)
                except Exception as e:
                    if self.cancelled.is_set():
                        raise Cancelled() from None
                    raise self._error(e, connecting=False) from None
                if not rows:
                    return
                yield pa.RecordBatch.from_pydict(
                    {c: [r[i] for r in rows] for i, c in enumerate(columns)}
                ).cast(schema)

        return schema, batches()

    def cancel(self):
        super().cancel()
        conn = self._conn
        if conn is not None:
            try:
                conn.connection.dbapi_connection.close()
            except Exception:
                pass

    def close(self):
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
        if self._engine is not None:
            self._engine.dispose()
        self._conn = self._engine = None
