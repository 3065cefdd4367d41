"""Arrow-native execution of one query on a named connection, with real cancel.

Drivers, by URL scheme:

- ``postgresql[+anything]://``: ADBC (``adbc-driver-postgresql``), streamed
  as Arrow record batches over a pooled session (:mod:`.pool`); types the
  driver cannot decode are cast in the warehouse (:mod:`.result_types`);
  cancel sends the PostgreSQL cancel request (``PQcancel``) and
  ``pg_cancel_backend`` for the query's backend.
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

from jupyterhub_civis.query_cache import result_types
from jupyterhub_civis.query_cache.connection import (  # noqa: F401 (re-exported)
    Cancelled,
    Connection,
    WarehouseError,
    WarehouseUnreachable,
    warehouse_message,
)
from jupyterhub_civis.query_cache.plain_statements import PlainStatements
from jupyterhub_civis.query_cache.pool import SessionPool

_DEFAULT_POOL = SessionPool()


def execution_for(connection: Connection, pool: SessionPool | None = None) -> Execution:
    if connection.backend in ("postgresql", "postgres"):
        return PostgresExecution(connection, pool or _DEFAULT_POOL)
    if connection.backend == "duckdb":
        return DuckDBExecution(connection)
    return SQLAlchemyExecution(connection)


class Execution:
    """One query run. ``run`` (blocking, in a worker thread) returns the schema and
    a batch iterator; ``cancel`` may be called from any thread at any time. The
    statement arrives as :func:`.keys.statement_text` made it (no trailing ``;``)."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self.cancelled = threading.Event()
        self.completed = False  # every batch was read without error

    def run(self, sql: str, params: Any) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        raise NotImplementedError

    def cancel(self) -> None:
        self.cancelled.set()

    def finishing(self) -> None:
        """The run's answer is about to go out; ``close`` follows (off its path)."""

    def close(self) -> None:
        pass

    def _check(self):
        if self.cancelled.is_set():
            raise Cancelled()

    def _error(self, exc: BaseException, *, connecting: bool) -> WarehouseError:
        if not connecting and self.cancelled.is_set():
            return Cancelled()
        msg = self.connection.scrub(str(exc).strip())
        if connecting:
            return WarehouseUnreachable(f"cannot reach warehouse {self.connection.name!r}: {msg}")
        return WarehouseError(warehouse_message(msg), sqlstate=getattr(exc, "sqlstate", None))

    def _stream(self, batches) -> Iterator[pa.RecordBatch]:
        """The driver's batches, with cancel checks and errors in the warehouse's words."""
        try:
            for batch in batches:
                self._check()
                yield batch
        except Cancelled:
            raise
        except Exception as e:
            raise self._error(e, connecting=False) from None
        self.completed = True


_PLAIN = PlainStatements()


class _PgSession:
    def __init__(self, conn, pid):
        self.conn, self.pid = conn, pid


class PostgresExecution(Execution):
    batch_size_hint_bytes = 4 << 20
    cancel_retry_seconds = 5.0

    def __init__(self, connection, pool: SessionPool):
        super().__init__(connection)
        self.pool = pool
        self._session: _PgSession | None = None
        self._cursor = None
        self._pid = None
        self._uri = None
        self._finished = threading.Event()
        self._returning = False  # the pool expects this run's session back

    def _libpq_uri(self) -> str:
        url = self.connection.resolved_url()
        scheme, rest = url.split(":", 1)
        return "postgresql:" + rest

    def _connect(self) -> _PgSession:
        import adbc_driver_postgresql.dbapi as pg

        conn = pg.connect(self._uri, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute("select pg_backend_pid()")
                session = _PgSession(conn, cur.fetchone()[0])
            self._apply_settings(session)
        except Exception:
            conn.close()
            raise
        return session

    def _apply_settings(self, session: _PgSession) -> None:
        with session.conn.cursor() as cur:
            for name, value in self.connection.settings.items():
                cur.execute("select set_config($1, $2, false)", (name, str(value)))
                cur.fetchall()

    def _reset(self, session: _PgSession) -> None:
        """Clean slate (and health check) for a session given back to the pool:
        whatever its query changed (settings, temp tables, prepared statements) is gone."""
        with session.conn.cursor() as cur:
            cur.execute("discard all")
        self._apply_settings(session)

    @staticmethod
    def _close_session(session: _PgSession) -> None:
        session.conn.close()

    @staticmethod
    def _alive(session: _PgSession) -> bool:
        try:
            with session.conn.cursor() as cur:
                cur.execute("select 1")
                cur.fetchall()
            return True
        except Exception:
            return False

    def _open(self, fresh: bool = False) -> bool:
        """Take a session (a new one if ``fresh``) and a cursor; whether it was reused."""
        try:
            self._check()
            if fresh:
                self._session, reused = self._connect(), False
                self.pool.opened += 1
            else:
                self._session, reused = self.pool.acquire(self._uri, self._connect)
        except Cancelled:
            raise
        except Exception as e:
            self.close()
            raise self._error(e, connecting=True) from None
        self._pid = self._session.pid
        self._check()
        self._cursor = self._session.conn.cursor()
        self._cursor.adbc_statement.set_options(
            **{"adbc.postgresql.batch_size_hint_bytes": str(self.batch_size_hint_bytes)}
        )
        return reused

    def _describe(self, statement, args, reused: bool):
        """The statement's result schema. Describing has no side effects, so when a
        pooled session turns out dead (the warehouse restarted or ended it while it
        was idle) it is discarded and the describe repeated on a new session."""
        try:
            return self._cursor.adbc_execute_schema(statement, args)
        except Exception:
            if not reused or self.cancelled.is_set() or self._alive(self._session):
                raise
        dead, self._session = self._session, None
        self._cursor = None
        self.pool.discard(self._uri, dead, self._close_session)
        self._open(fresh=True)
        return self._cursor.adbc_execute_schema(statement, args)

    def run(self, sql, params):
        self._uri = self._libpq_uri()
        reused = self._open()
        # the driver runs COPY (<statement>) TO STDOUT: the statement ends its own
        # line, so a trailing "-- comment" cannot swallow the closing parenthesis
        statement = sql + "\n"
        args = tuple(params) if params else None
        plain = (
            self._uri,
            tuple(sorted((k, str(v)) for k, v in self.connection.settings.items())),
            statement,
            tuple(type(p).__name__ for p in args or ()),
        )
        if len(statement) <= _PLAIN.max_chars and plain in _PLAIN:
            ran = self._run_plain(plain, statement, args, reused)
            if ran is not None:
                return ran
            reused = False  # the pooled session was dead: a new one, described
        try:
            described = self._describe(statement, args, reused)
            casts = result_types.pg_casts(described)
            if any(casts):
                statement = result_types.wrap_with_casts(sql, described.names, casts)
            elif len(statement) <= _PLAIN.max_chars:
                _PLAIN.add(plain)
            self._cursor.execute(statement, args)
            reader = self._cursor.fetch_record_batch()
        except (Cancelled, WarehouseError):
            raise
        except Exception as e:
            raise self._error(e, connecting=False) from None
        return reader.schema, self._stream(reader)

    def _run_plain(self, plain, statement, args, reused):
        """Run a statement known to need no casts without describing it; None when
        the pooled session turned out dead (nothing ran: the caller starts over)."""
        try:
            self._cursor.execute(statement, args)
            reader = self._cursor.fetch_record_batch()
        except Exception as e:
            if not reused or self.cancelled.is_set() or self._alive(self._session):
                raise self._error(e, connecting=False) from None
            dead, self._session, self._cursor = self._session, None, None
            self.pool.discard(self._uri, dead, self._close_session)
            self._open(fresh=True)
            return None
        if any(result_types.pg_casts(reader.schema)):
            _PLAIN.discard(plain)  # its session is discarded: the run is not completed
            raise WarehouseError(
                "the result's column types changed since this query last ran on this "
                "server; run it again"
            )
        return reader.schema, self._stream(reader)

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

    def finishing(self):
        if self._session is not None and self.completed and not self.cancelled.is_set():
            self.pool.expect_return(self._uri)
            self._returning = True

    def close(self):
        self._finished.set()
        if self._cursor is not None:
            try:
                self._cursor.close()
            except Exception:
                self.completed = False
        session, self._session, self._cursor = self._session, None, None
        expected, self._returning = self._returning, False
        if session is None:
            return
        if self.completed and not self.cancelled.is_set():
            self.pool.release(
                self._uri, session, self._reset, self._close_session, expected=expected
            )
        else:  # cancelled or failed: never handed to another query
            self.pool.discard(self._uri, session, self._close_session, expected=expected)


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
            # a statement ending in a "--" comment: it ends its own line
            relation = (
                self._con.sql(sql + "\n", params=params) if params else self._con.sql(sql + "\n")
            )
            if relation is None:
                raise ValueError("the statement returned no result set")
            if hasattr(relation, "to_arrow_reader"):  # duckdb >= 1.4
                reader = relation.to_arrow_reader(self.batch_rows)
            else:
                reader = relation.fetch_arrow_reader(self.batch_rows)
        except Exception as e:
            raise self._error(e, connecting=False) from None
        return reader.schema, self._stream(reader)

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
        sql += "\n"  # a trailing "--" comment ends its own line
        try:
            conn = self._conn.execution_options(stream_results=True)
            if isinstance(params, dict):
                result = conn.execute(sa.text(sql), params)
            else:
                result = conn.exec_driver_sql(sql, tuple(params or ()))
            columns = list(result.keys())
            first = result.fetchmany(self.chunk_rows)
        except Exception as e:
            raise self._error(e, connecting=False) from None

        def to_batch(rows, schema=None):
            batch = pa.RecordBatch.from_pydict(
                {c: [r[i] for r in rows] for i, c in enumerate(columns)}
            )
            return batch if schema is None else batch.cast(schema)

        first_batch = to_batch(first)

        def chunks():
            yield first_batch
            while rows := result.fetchmany(self.chunk_rows):
                yield to_batch(rows, first_batch.schema)

        return first_batch.schema, self._stream(chunks())

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
