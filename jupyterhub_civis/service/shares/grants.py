"""Reading a result through a share: the one place the result read path (HTTP and the
same-host handoff) widens beyond "your own results".

A caller reads a result of another user only while a share that carries it is
live and the caller is in its audience (``ShareStore.grant_owner``). Only reads:
pin, unpin and delete stay the owner's.
"""

from __future__ import annotations

from jupyterhub_civis.service.store import NotFound


def read_result(store, shares, caller, result_id: str, *, touch: bool = True):
    """``ResultInfo`` of ``result_id`` if ``caller`` may read it (its own, as results
    admin, or through a share); ``NotFound`` otherwise. Blocking."""
    try:
        return store.get(caller.user, result_id, touch=touch, admin=caller.admin)
    except NotFound:
        if caller.user is None or shares is None:
            raise
    owner = shares.grant_owner(caller.user, caller.groups, result_id)
    if owner is None:
        raise NotFound()
    return store.get(owner, result_id, touch=touch)
