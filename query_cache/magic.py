"""``%%sql`` cell magic: the cell body is the SQL, run through the query cache.

    %load_ext jupyterhub_civis.query_cache

    %%sql --connection default --mode reproducible --out sales
    select region, sum(amount) from sales group by region

Options: ``--connection``/``-c`` (default ``default``), ``--mode``/``-m``
(``reproducible`` or ``refresh``), ``--max-age`` seconds, ``--out``/``-o`` a
variable to assign the result to, ``--arrow`` for a pyarrow Table instead of a
pandas DataFrame. The result is also the cell's value.
"""

from __future__ import annotations

from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from jupyterhub_civis.query_cache.client import query_arrow


@magics_class
class SQLMagics(Magics):
    @magic_arguments()
    @argument("--connection", "-c", default="default", help="connection name")
    @argument("--mode", "-m", default=None, help="reproducible or refresh")
    @argument(
        "--max-age", type=float, default=None, help="reuse a result at most this many seconds old"
    )
    @argument("--out", "-o", default=None, help="variable to assign the result to")
    @argument("--arrow", action="store_true", help="return a pyarrow Table")
    @cell_magic
    def sql(self, line, cell):
        args = parse_argstring(self.sql, line)
        table = query_arrow(cell, connection=args.connection, mode=args.mode, max_age=args.max_age)
        result = table if args.arrow else table.to_pandas()
        if args.out:
            self.shell.user_ns[args.out] = result
        return result


def register(ipython) -> None:
    ipython.register_magics(SQLMagics)
