"""Shared-notebook links of the civis service (docs/sharing.md).

A *share* is a link (``/services/civis/s/<id>``) owned by one Hub user, with an
audience (users, groups, or everyone who can log in), an optional expiry and a
``kind``: ``snapshot`` (immutable notebook versions), ``live`` (a JupyterHub
share code of a running server) or, later, ``report`` (runs kept as versions).

- ``policy.py``   pure rules: ids, audience, expiry, revocation, what a viewer sees
- ``schemas.py``  pydantic request models (``extra="forbid"``)
- ``models.py``   the tables (same metadata as the result store; Alembic 0003)
- ``store.py``    ``ShareStore``: snapshots, versions, audience, pins, events
- ``render.py``   a version's notebook as sanitised HTML (nbconvert + nh3), cached
- ``api.py``      ``api/shares…`` handlers; ``pages.py`` the viewer and the lists
"""
