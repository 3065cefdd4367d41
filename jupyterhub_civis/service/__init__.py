"""The bundle's JupyterHub managed service "civis": the durable result store.

- ``app``: the Application (traitlets configuration) and its wiring;
- ``auth``: ``identify()``, the one identity check (HTTP and handoff);
- ``handlers/``: one module per resource, each contributing its ``ROUTES``;
- ``pages``: the page base (HTML errors, templates);
- ``policy``: pure rules (who owns what, quotas, retention choice);
- ``store``: metadata + fsspec blobs, atomic uploads, eviction, orphan cleanup;
- ``handoff``: the same-host handoff of a result's open file;
- ``metrics``: Prometheus counters and store gauges;
- ``models`` / ``migrations``: the metadata schema (SQLAlchemy, Alembic);
- ``hubconfig``: ``declare_service`` for a ``jupyterhub_config.py``.
"""
