"""Reproducible warehouse query cache: a jupyter-server extension and its kernel client.

In a notebook::

    from jupyterhub_civis.query_cache import deliverable, query
    deliverable("analysis")   # re-runs serve pinned results; "report": always fresh
    df = query("select * from sales where region = $1", ["west"], connection="default")

The server side (``QueryCache``, see ``app.py``) is loaded lazily so importing
the client in a kernel does not import jupyter_server.
"""

from jupyterhub_civis.query_cache.client import QueryError, deliverable, query, query_arrow

__all__ = ["query", "query_arrow", "deliverable", "QueryError", "load_ipython_extension"]


def _jupyter_server_extension_points():
    from jupyterhub_civis.query_cache.app import QueryCache

    return [{"module": "jupyterhub_civis.query_cache", "app": QueryCache}]


def load_ipython_extension(ipython):
    """``%load_ext jupyterhub_civis.query_cache`` registers the ``%%sql`` cell magic."""
    from jupyterhub_civis.query_cache.magic import register

    register(ipython)
