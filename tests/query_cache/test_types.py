"""docs/query_cache.md's type table, row by row, against real PostgreSQL: what
``query()`` returns on a miss and on a hit, and what ``pandas.read_sql`` returns.

Regenerate the table's rows after a deliberate change with
``python tests/query_cache/test_types.py`` (it prints them; paste them into the doc).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "query_cache.md"

# (PostgreSQL type, a literal of it)
TYPES = [
    ("smallint", "2::int2"),
    ("integer", "2::int4"),
    ("bigint", "2::int8"),
    ("real", "1.5::float4"),
    ("double precision", "1.5::float8"),
    ("numeric", "1.25::numeric"),
    ("numeric(10,2)", "1.25::numeric(10,2)"),
    ("numeric, 40 digits", "1234567890123456789012345678901234567890::numeric"),
    ("numeric NaN", "'NaN'::numeric"),
    ("money", "'1.23'::money"),
    ("boolean", "true"),
    ("text", "'a'::text"),
    ("varchar(5)", "'a'::varchar(5)"),
    ("char(3)", "'a'::char(3)"),
    ("bytea", "'\\x00ff'::bytea"),
    ("date", "'2024-01-02'::date"),
    ("time", "'12:30'::time"),
    ("timetz", "'12:30+02'::timetz"),
    ("timestamp", "'2024-01-02 03:04:05'::timestamp"),
    ("timestamptz", "'2024-01-02 03:04:05+00'::timestamptz"),
    ("interval", "'1 day 2 hours'::interval"),
    ("uuid", "'00000000-0000-0000-0000-000000000001'::uuid"),
    ("json", "'{\"a\": 1}'::json"),
    ("jsonb", "'{\"a\": 1}'::jsonb"),
    ("integer[]", "'{1,2}'::int[]"),
    ("text[]", "'{a,b}'::text[]"),
    ("point", "point(1, 2)"),
    ("inet", "'10.0.0.1'::inet"),
    ("cidr", "'10.0.0.0/8'::cidr"),
    ("macaddr", "'08:00:2b:01:02:03'::macaddr"),
    ("bit(3)", "B'101'"),
    ("int4range", "'[1,3)'::int4range"),
    ("xml", "'<a/>'::xml"),
    ("tsvector", "'a b'::tsvector"),
    ("inet[]", "'{10.0.0.1}'::inet[]"),
]


def _value(v) -> str:
    if type(v).__module__ == "numpy":
        v = v.tolist()
    return f"{type(v).__name__} {v!r}".replace("|", "\\|")


def describe(df) -> str:
    return f"`{df.dtypes.iloc[0]}` `{_value(df.iloc[0, 0])}`"


def read_sql(pg_url: str, expression: str) -> str:
    import pandas as pd
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return describe(pd.read_sql(sa.text(f"select {expression} as v"), conn))
    finally:
        engine.dispose()


def doc_rows() -> dict[str, tuple[str, str]]:
    """PostgreSQL type -> (query() cell, read_sql cell), from the doc's table."""
    rows = {}
    for line in DOC.read_text().splitlines():
        m = re.match(r"^\| (.+?) \| `(.+?)` \| (`.+`) \| (`.+`) \|$", line)
        if m:
            rows[m.group(1)] = (m.group(3), m.group(4))
    return rows


@pytest.fixture(scope="module")
def client(server):
    from jupyterhub_civis.query_cache.client import ServerInfo, query

    info = ServerInfo(server.url, server.token)
    return lambda sql, **kw: query(sql, server=info, progress=False, **kw)


def test_the_table_lists_every_type():
    assert set(doc_rows()) == {name for name, _ in TYPES}


@pytest.mark.parametrize("name, expression", TYPES, ids=[n for n, _ in TYPES])
def test_type_row(name, expression, server, client, pg):
    expected_query, expected_read_sql = doc_rows()[name]
    sql = f"select {expression} as v"
    miss = client(sql, mode="refresh")
    assert server.api("GET", "civis/queries").json()["queries"][0]["cache"] == "miss"
    hit = client(sql, max_age=3600)
    assert server.api("GET", "civis/queries").json()["queries"][0]["cache"] == "hit"
    assert (describe(miss), describe(hit)) == (expected_query, expected_query)
    assert read_sql(pg.url, expression) == expected_read_sql
    assert not isinstance(miss.iloc[0, 0], bytes) or name == "bytea"


def test_exact_decimals_and_query_arrow(client, server):
    import decimal

    import pyarrow as pa

    from jupyterhub_civis.query_cache.client import ServerInfo, query_arrow

    sql = "select 1.25::numeric(10,2) as a, 0.1::numeric as b, 1e40::numeric as c"
    df = client(sql, exact_decimals=True)
    assert df.iloc[0].tolist() == [decimal.Decimal("1.25"), decimal.Decimal("0.1"), "1" + "0" * 40]
    t = query_arrow(sql, server=ServerInfo(server.url, server.token), progress=False)
    assert t.schema.types[:2] == [pa.decimal128(10, 2), pa.decimal128(2, 1)]
    assert t.schema.types[2] == pa.string()  # beyond 38 digits: the exact text
    assert client(sql).dtypes.tolist() == ["float64"] * 3


if __name__ == "__main__":  # print the table's rows, measured
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    import tempfile

    from tests.query_cache.conftest import Server

    url = "postgresql://postgres@127.0.0.1:5432/test"
    s = Server(Path(tempfile.mkdtemp()), connections={"default": url}).start()
    try:
        from jupyterhub_civis.query_cache.client import ServerInfo, query

        for name, expression in TYPES:
            df = query(
                f"select {expression} as v",
                server=ServerInfo(s.url, s.token),
                progress=False,
                mode="refresh",
            )
            print(f"| {name} | `{expression}` | {describe(df)} | {read_sql(url, expression)} |")
    finally:
        s.stop()
