"""Warehouse connections and Arrow-native execution with real cancel.

An admin configures connections by name (``QueryCache.connections``); each is
a SQLAlchemy URL, optionally with ``${VAR}`` placeholders filled from the
server's environment when connecting (that is how credentials are supplied:
they never appear in cache keys, metadata, logs or error messages).

Drivers, by URL scheme:

- ``postgresql[+anything]://``: ADBC (``adbc-driver-postgresql``), streamed
  as Arrow record batches; cancel sends the PostgreSQL cancel request
  (``PQcancel``) and ``pg_cancel_backend`` for the query's backend.
- ``duckdb:///path``: DuckDB's own Arrow output (read-only); cancel interrupts.
- anything else: SQLAlchemy, rows converted to Arrow in chunks; cancel closes
  the DBAPI connection (best effort; the driver decides how fast it stops).
"""

from __future__ import annotations

import os
import re
import string
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from jupyterhub_civis.errors import InvalidInput

_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


class WarehouseError(Exception):
    """The warehouse rejected the query (its message, credentials scrubbed)."""


class WarehouseUnreachable(WarehouseError):
    """The warehouse could not be reached."""


class Cancelled(Exception):
    pass


@dataclass(frozen=True)
class Connection:
    name: str
    url_template: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    principal_override: str | None = None

    @classmethod
    def from_config(cls, name: str, value: Any) -> Connection:
        if isinstance(value, str):
            return cls(name, value)
        if isinstance(value, Mapping) and isinstance(value.get("url"), str):
            settings = dict(value.get("settings") or {})
            for k in settings:
                if not _SETTING_NAME.match(k):
                    raise ValueError(f"connection {name!r}: bad setting name {k!r}")
            return cls(name, value["url"], settings, value.get("principal"))
        raise ValueError(f"connection {name!r}: expected a URL string or a dict with 'url'")

    # -- identity (safe to hash, log and show)
    def _parsed_template(self):
        from sqlalchemy.engine import make_url

        return make_url(self.url_template)

    @property
    def scheme(self) -> str:
        return self.url_template.split(":", 1)[0].lower()

    @property
    def backend(self) -> str:
        return self.scheme.split("+", 1)[0]

    @property
    def dialect(self) -> str | None:
        return {
            "postgresql": "postgres",
            "postgres": "postgres",
            "duckdb": "duckdb",
            "sqlite": "sqlite",
            "mysql": "mysql",
            "snowflake": "snowflake",
            "bigquery": "bigquery",
        }.get(self.backend)

    @property
    def identity(self) -> str:
        """The URL template with any password masked (placeholders stay unexpanded)."""
        try:
            return self._parsed_template().render_as_string(hide_password=True)
        except Exception:
            return self.url_template

    def resolved_url(self, environ: Mapping[str, str] = os.environ) -> str:
        try:
            return string.Template(self.url_template).substitute(environ)
        except KeyError as e:
            raise WarehouseUnreachable(
                f"connection {self.name!r} needs the environment variable {e.args[0]} on the server"
            ) from None

    def principal(self, environ: Mapping[str, str] = os.environ) -> str:
        if self.principal_override:
            return self.principal_override
        try:
            from sqlalchemy.engine import make_url

            return make_url(self.resolved_url(environ)).username or ""
        except WarehouseUnreachable:
            return ""
        except Exception:
            return ""

    def secrets(self, environ: Mapping[str, str] = os.environ) -> list[str]:
        out = []
        try:
            from sqlalchemy.engine import make_url

            resolved = self.resolved_url(environ)
            out.append(resolved)
            pw = make_url(resolved).password
            if pw:
                out.append(str(pw))
        except Exception:
            pass
        for var in re.findall(r"\$\{(\w+)\}|\$(\w+)", self.url_template):
            v = environ.get(var[0] or var[1])
            if v and len(v) >= 3:
                out.append(v)
        return sorted(set(out), key=len, reverse=True)

    def scrub(self, message: str) -> str:
        for secret in self.secrets():
            message = message.replace(secret, "***")
        return message

    def check_params(self, params: Any) -> None:
        if params is None:
            return
        if not isinstance(params, (list, dict)):
            raise InvalidInput("params", "must be a JSON list (positional) or object (named)")
        if self.backend in ("postgresql", "postgres") and isinstance(params, dict):
            raise InvalidInput(
                "params",
                f"connection {self.name!r} takes positional parameters ($1, $2, ...): send a list",
            )

    def execution(self) -> Execution:
        if self.backend in ("postgresql", "postgres"):
            return PostgresExecution(self)
        if self.backend == "duckdb":
            return DuckDBExecution(self)
        return SQLAlchemyExecution(self)


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
