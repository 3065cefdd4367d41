"""Reading a result through a share: the one place the result read path (HTTP and the
same-host handoff) widens beyond "your own results".

A caller reads a result of another user only while a share that carries it is
live and the caller is in its audience (``ShareStore.grant_owner``). Only reads:
pin, unpin and delete stay the owner's. When only a group audience could grant
the read, the caller's groups are asked of the hub afresh (``read_result_now``):
removing someone from a group ends their reads at once, as it ends their views.
"""

from __future__ import annotations

from jupyterhub_civis.service.shares.policy import GroupsNeeded
from jupyterhub_civis.service.store import NotFound


def read_result(store, shares, caller, result_id: str, *, touch: bool = True, groups=None):
    """``ResultInfo`` of ``result_id`` if ``caller`` may read it (its own, as results
    admin, or through a share); ``NotFound`` otherwise. ``groups``: the caller's
    current Hub groups; without them ``GroupsNeeded`` when only groups could decide.
    Blocking."""
    try:
        return store.get(caller.user, result_id, touch=touch, admin=caller.admin)
    except NotFound:
        if caller.user is None or shares is None:
            raise
    current = groups is not None
    owner = shares.grant_owner(
        caller.user, groups if current else caller.groups, result_id, groups_current=current
    )
    if owner is None:
        raise NotFound()
    return store.get(owner, result_id, touch=touch)


async def read_result_now(run, read, caller, result_id: str, current_groups, **kwargs):
    """``await run(read, caller, result_id, …)``, asked again with
    ``await current_groups()`` when only the caller's groups could decide."""
    try:
        return await run(read, caller, result_id, **kwargs)
    except GroupsNeeded:
        groups = await current_groups()
    return await run(read, caller, result_id, groups=groups, **kwargs)
