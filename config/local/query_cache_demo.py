"""Query cache wiring for config/local/jupyterhub_config.py.

Load it from the main config with::

    load_subconfig(os.path.join(here, "query_cache_demo.py"))

- Warehouse: generates (once) a DuckDB demo warehouse in ``$CIVIS_STATE_DIR``
  and gives it to every single-user server as the query cache's ``default``
  connection. Set ``CIVIS_DEMO_WAREHOUSE_URL`` (a SQLAlchemy URL, e.g.
  ``postgresql://postgres@127.0.0.1:5432/test``) to use another warehouse.
- Result store: one folder per user (``$CIVIS_STATE_DIR/query-cache/<user>``),
  shared by that user's named servers, so a notebook copied from one server to
  another re-runs with its pinned results. (Each local server has its own HOME,
  so the extension's default, under the jupyter data dir, would not be shared.)
"""

import json
import os

from jupyterhub_civis.query_cache.demo_data import make_demo_warehouse

c = get_config()  # noqa: F821 (provided by JupyterHub)

_project = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_state = os.path.abspath(os.environ.get("CIVIS_STATE_DIR", os.path.join(_project, ".demo")))
_url = os.environ.get("CIVIS_DEMO_WAREHOUSE_URL")
if not _url:
    _url = "duckdb:///" + make_demo_warehouse(os.path.join(_state, "demo-warehouse.duckdb"))

c.Spawner.args.extend(["--QueryCache.connections=" + json.dumps({"default": _url})])


def _user_store(spawner):
    return os.path.join(_state, "query-cache", spawner.user.escaped_name)


c.Spawner.environment.update({"CIVIS_QUERY_CACHE_DIR": _user_store})
