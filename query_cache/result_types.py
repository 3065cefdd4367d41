"""Which types a result's columns come back as (pure; no I/O).

Warehouse side (PostgreSQL through ADBC): the driver decodes most types to
Arrow, but returns some as their raw binary wire format (``point``, ``inet``,
``cidr``, ``timetz``, ``macaddr``, ranges, ``xml``, ``tsvector``, ... and
arrays of them) and ``money`` as an int64 count of cents. :func:`pg_casts`
finds those columns in the described result and :func:`wrap_with_casts` has
the warehouse cast them: to ``text`` (their PostgreSQL text form), ``money``
to ``numeric``. Only ``bytea`` ever comes back as bytes.

``numeric`` is stored as its exact decimal text (the driver's form). Reading a
result (:func:`for_arrow`, :func:`for_pandas`):

- ``query_arrow()``: ``decimal128(p, s)`` when every value fits 38 digits
  (``numeric(p, s)`` keeps its declared precision and scale; for an
  unconstrained ``numeric`` the smallest that holds every value), else the
  exact text (a ``string`` column) — also for NaN/Infinity;
- ``query()``: ``float64``, as ``pandas.read_sql`` returns; with
  ``exact_decimals=True`` Python ``decimal.Decimal`` objects instead. The
  same applies to ``decimal128`` columns from other warehouses (DuckDB).
- ``interval`` is ``timedelta64[us]`` in ``query()`` (a month counts as 30
  days, as psycopg does) and ``month_day_nano_interval`` in ``query_arrow()``.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

PG_TYPE = b"POSTGRESQL:type"
PG_TYPMOD = b"POSTGRESQL:typmod"
MAX_DECIMAL128_DIGITS = 38
_US_PER_DAY = 86_400 * 10**6
PANDAS_THREADS_FROM_BYTES = 16 << 20


# ---------------------------------------------------------------- warehouse side
def _pg_type(field: pa.Field) -> str:
    return ((field.metadata or {}).get(PG_TYPE) or b"").decode()


def _raw_bytes(t: pa.DataType) -> bool:
    """Whether values of ``t`` would reach the user as undecoded wire bytes."""
    if isinstance(t, pa.BaseExtensionType):
        return _raw_bytes(t.storage_type)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _raw_bytes(t.value_type)
    if pa.types.is_struct(t):
        return any(_raw_bytes(t.field(i).type) for i in range(t.num_fields))
    return False


def pg_casts(schema: pa.Schema) -> list[str | None]:
    """Per column of a described PostgreSQL result: ``None`` (as is) or the SQL type
    the warehouse must cast it to."""
    casts: list[str | None] = []
    for field in schema:
        pg_type = _pg_type(field)
        if pg_type == "money":
            casts.append("numeric")
        elif pg_type != "bytea" and _raw_bytes(field.type):
            casts.append("text")
        else:
            casts.append(None)
    return casts


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _cast(column: str, cast: str | None) -> str:
    if cast == "text":
        # the type's own output form (what psql shows: inet '10.0.0.1', not the
        # '10.0.0.1/32' of the inet -> text cast); NULL stays NULL
        return f"case when {column} is null then null else format('%s', {column}) end"
    return f"{column}::{cast}" if cast else column


def wrap_with_casts(statement: str, names: list[str], casts: list[str | None]) -> str:
    """``statement`` as a subquery whose columns are cast as ``casts`` says; columns are
    addressed by position (names may repeat or be ``?column?``) and keep their names.
    The statement ends its own line: a trailing ``--`` comment cannot eat the ``)``."""
    aliases = [f"c{i}" for i in range(len(names))]
    select = ", ".join(
        f"{_cast(f'q.{a}', cast)} as {_quote(n)}"
        for a, n, cast in zip(aliases, names, casts, strict=True)
    )
    return f"select {select} from (\n{statement}\n) as q({', '.join(aliases)})"


# ---------------------------------------------------------------- reading side
def _numeric_field(field: pa.Field) -> bool:
    return _pg_type(field) == "numeric" and pa.types.is_string(_storage(field.type))


def _storage(t: pa.DataType) -> pa.DataType:
    return t.storage_type if isinstance(t, pa.BaseExtensionType) else t


def _text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if isinstance(column.type, pa.BaseExtensionType):
        return pa.chunked_array([c.storage for c in column.chunks], column.type.storage_type)
    return column


def _declared(field: pa.Field) -> tuple[int, int] | None:
    typmod = int((field.metadata or {}).get(PG_TYPMOD, b"-1") or -1)
    if typmod < 4:
        return None
    return ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF


def numeric_decimal_type(field: pa.Field, text: pa.ChunkedArray) -> pa.DataType | None:
    """The decimal128 type holding every value of a numeric text column exactly, or None."""
    if pc.any(pc.match_substring_regex(text, "[A-Za-z]")).as_py():
        return None  # NaN / Infinity have no decimal form
    declared = _declared(field)
    if declared is not None:
        precision, scale = declared
    else:
        digits = pc.utf8_length(pc.replace_substring_regex(text, "^-", ""))
        dot = pc.find_substring(text, ".")
        has_dot = pc.greater_equal(dot, 0)
        frac = pc.if_else(has_dot, pc.subtract(pc.subtract(pc.utf8_length(text), dot), 1), 0)
        whole = pc.subtract(pc.subtract(digits, frac), pc.if_else(has_dot, 1, 0))
        scale = pc.max(frac).as_py() or 0
        precision = max((pc.max(whole).as_py() or 0) + scale, 1)
    if precision > MAX_DECIMAL128_DIGITS:
        return None
    return pa.decimal128(precision, scale)


def for_arrow(table: pa.Table) -> pa.Table:
    """What ``query_arrow()`` returns for a stored result."""
    columns, fields, changed = [], [], False
    for field, column in zip(table.schema, table.columns, strict=True):
        if _numeric_field(field):
            text = _text(column)
            decimal = numeric_decimal_type(field, text)
            column = text.cast(decimal) if decimal is not None else text
            field = pa.field(field.name, column.type, field.nullable, field.metadata)
            changed = True
        columns.append(column)
        fields.append(field)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields)) if changed else table


def for_pandas(table: pa.Table, *, exact_decimals: bool = False):
    """What ``query()`` returns for a stored result: a pandas DataFrame."""
    columns, fields = [], []
    for field, column in zip(table.schema, table.columns, strict=True):
        t = field.type
        if _numeric_field(field):
            text = _text(column)
            if exact_decimals:
                decimal = numeric_decimal_type(field, text)
                column = text.cast(decimal) if decimal is not None else text
            else:
                column = text.cast(pa.float64())
        elif pa.types.is_decimal(t) and not exact_decimals:
            column = column.cast(pa.float64())
        elif t == pa.month_day_nano_interval():
            column = _interval_to_duration(column)
        columns.append(column)
        fields.append(pa.field(field.name, column.type, field.nullable))
    table = pa.Table.from_arrays(columns, schema=pa.schema(fields))
    # threads pay off for large results only: for a short query's few rows, handing
    # columns to a thread pool cost more than converting them
    return table.to_pandas(use_threads=table.nbytes > PANDAS_THREADS_FROM_BYTES)


def _interval_to_duration(column: pa.ChunkedArray) -> pa.ChunkedArray:
    values = [
        None if v is None else (v.months * 30 + v.days) * _US_PER_DAY + v.nanoseconds // 1000
        for v in column.to_pylist()
    ]
    return pa.chunked_array([pa.array(values, pa.duration("us"))])
