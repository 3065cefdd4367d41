"""A small DuckDB warehouse with generated demo data, for the demo hub.

``python -m jupyterhub_civis.query_cache.demo_data PATH`` writes (once) a
DuckDB file with ``regions``, ``products`` and 200,000 ``sales`` rows,
deterministic for a given file name so every demo shows the same numbers.
"""

from __future__ import annotations

import os
import sys

SALES_ROWS = 200_000


def make_demo_warehouse(path: str, *, rows: int = SALES_ROWS) -> str:
    """Create the demo warehouse at ``path`` unless it exists; return the path."""
    import duckdb

    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    if os.path.exists(tmp):
        os.unlink(tmp)
    con = duckdb.connect(tmp)
    try:
        con.execute("select setseed(0.42)")
        con.execute(
            "create table regions as select * from (values "
            "(1, 'North'), (2, 'South'), (3, 'East'), (4, 'West')) t(region_id, region)"
        )
        con.execute(
            "create table products as select range + 1 as product_id, "
            "'product ' || (range + 1) as product, round(5 + random() * 95, 2) as list_price "
            "from range(50)"
        )
        con.execute(
            f"""create table sales as select
                  range + 1 as sale_id,
                  date '2024-01-01' + cast(floor(random() * 730) as integer) as sale_date,
                  1 + cast(floor(random() * 4) as integer) as region_id,
                  1 + cast(floor(random() * 50) as integer) as product_id,
                  1 + cast(floor(random() * 10) as integer) as units,
                  round(random() * 500, 2) as amount
                from range({int(rows)})"""
        )
        con.execute("checkpoint")
    finally:
        con.close()
    os.replace(tmp, path)
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m jupyterhub_civis.query_cache.demo_data PATH")
    print(make_demo_warehouse(sys.argv[1]))
