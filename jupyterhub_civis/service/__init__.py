"""The bundle's JupyterHub managed service "civis": the durable result store.

- ``policy``: pure rules (who owns what, id syntax, retention choice);
- ``models`` / ``migrations``: the metadata schema (SQLAlchemy, Alembic);
- ``store``: metadata + fsspec blobs, atomic uploads, eviction, orphan cleanup;
- ``app``: the tornado application, its thin handlers and its traitlets config.
"""
