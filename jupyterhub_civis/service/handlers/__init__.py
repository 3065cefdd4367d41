"""The service's handlers, one module per resource.

Each module listed in ``RESOURCES`` contributes ``ROUTES``: ``(path, handler)``
pairs whose path is relative to the service prefix (``""`` is the prefix
itself; a path starting with ``/`` is absolute). A new resource (e.g.
``shares``) is a new module with its ``ROUTES``, added to ``RESOURCES``; more
specific routes of a module come before its catch-alls, and modules are
matched in the order listed.
"""

from __future__ import annotations

from jupyterhub_civis.service.handlers import ops, queries, results

RESOURCES = (ops, results, queries)


def routes(prefix: str, resources=RESOURCES) -> list[tuple[str, type]]:
    """Every module's routes as tornado URL patterns under ``prefix`` (ends with ``/``)."""
    table = []
    for module in resources:
        for path, handler in module.ROUTES:
            if path.startswith("/"):
                pattern = path
            elif path == "":
                pattern = prefix.rstrip("/") + "/?"
            else:
                pattern = prefix + path
            table.append((pattern, handler))
    return table
