"""The service's handlers, one module per resource.

Each module listed in ``RESOURCES`` contributes ``ROUTES``: ``(path, handler)``
pairs whose path is relative to the service prefix (``""`` is the prefix
itself; a path starting with ``/`` is absolute), and may contribute ``MENU``:
``(label, path)`` pairs, its pages in the Services menu of every page. A new
resource (e.g. ``shares``) is a new module with its ``ROUTES`` (and ``MENU``),
added to ``RESOURCES``; more specific routes of a module come before its
catch-alls, and modules are matched in the order listed.
"""

from __future__ import annotations

from jupyterhub_civis.service.handlers import ops, queries, results
from jupyterhub_civis.service.pages import MenuLink
from jupyterhub_civis.service.reports import handlers as reports
from jupyterhub_civis.service.reports import pages as reports_pages
from jupyterhub_civis.service.shares import api as shares_api
from jupyterhub_civis.service.shares import copy as shares_copy
from jupyterhub_civis.service.shares import pages as shares_pages

# shares' and reports' APIs before results' catch-all "api/.*"; "My queries" first in the menu
RESOURCES = (ops, shares_api, reports, results, queries, shares_pages, shares_copy, reports_pages)


def _under(prefix: str, path: str) -> str:
    return path if path.startswith("/") else prefix + path


def routes(prefix: str, resources=RESOURCES) -> list[tuple[str, type]]:
    """Every module's routes as tornado URL patterns under ``prefix`` (ends with ``/``)."""
    table = []
    for module in resources:
        for path, handler in module.ROUTES:
            pattern = prefix.rstrip("/") + "/?" if path == "" else _under(prefix, path)
            table.append((pattern, handler))
    return table


def menu(prefix: str, resources=RESOURCES) -> list[MenuLink]:
    """Every module's pages, as the Services menu of the service's pages lists them."""
    return [
        MenuLink(label, _under(prefix, path))
        for module in resources
        for label, path in getattr(module, "MENU", ())
    ]
