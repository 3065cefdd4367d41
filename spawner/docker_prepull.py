"""Pull (and build) the catalog's images ahead of the first spawn on the Docker backend."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging

from jupyterhub_civis.spawner.catalog import Catalog

log = logging.getLogger("JupyterHub")
_tasks: set[asyncio.Task] = set()


def catalog_fingerprint(catalog: Catalog) -> str:
    """What pre-pulling depends on: each environment's image and packages."""
    items = sorted((env.image or "", tuple(env.packages)) for env in catalog.environments)
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


async def prepull(catalog: Catalog, builder) -> None:
    """Make every catalog image present on the builder's daemon; failures are logged only."""
    for env in catalog.environments:
        if not env.image:
            continue
        try:
            if env.packages:
                built = await builder.ensure(env.image, env.packages)
                await builder.pull(built.tag)
            else:
                await builder.pull(env.image)
            log.info("Pre-pulled the image of environment %s", env.name)
        except Exception as e:  # the spawn will try again and tell its user
            log.warning("Could not pre-pull the image of environment %s: %s", env.name, e)


def schedule_prepull(catalog: Catalog, builder) -> asyncio.Task | None:
    """Start ``prepull`` in the background on the running event loop (the hub's: JupyterHub
    loads its config inside it); without one (a command-line check) do nothing."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    task = loop.create_task(prepull(catalog, builder))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task
