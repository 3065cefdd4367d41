"""The bundle's additions to JupyterHub's own pages, through ``JupyterHub.template_paths``.

The templates in ``templates/hub/`` extend JupyterHub's (``{% extends
"templates/home.html" %}``) rather than copying them, so they follow the
hub's own page on every JupyterHub line:

- ``home.html``: each named server's row says which environment it runs (or
  will run on its next start), with its extra packages.

Enable them in ``jupyterhub_config.py`` (the shipped configs and the Helm
values do)::

    from jupyterhub_civis.spawner.hub_pages import use_hub_pages
    use_hub_pages(c)
"""

from __future__ import annotations

from importlib.resources import files

TEMPLATE_PATH = str(files("jupyterhub_civis.spawner") / "templates" / "hub")


def use_hub_pages(c) -> None:
    """Put the bundle's page templates first in ``c.JupyterHub.template_paths`` (idempotent)."""
    paths = [p for p in (c.JupyterHub.get("template_paths") or []) if p != TEMPLATE_PATH]
    c.JupyterHub.template_paths = [TEMPLATE_PATH, *paths]
