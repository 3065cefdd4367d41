"""What every share handler (REST API and pages) has in common: the share store and
the one 404 that a missing, revoked, expired or not-yours share all answer."""

from __future__ import annotations

import time

from tornado import web

from jupyterhub_civis.service.auth import current_groups
from jupyterhub_civis.service.shares import policy
from jupyterhub_civis.service.shares.store import ShareInfo, ShareNotFound


class ShareAccess:
    """Mixed into a service handler that has ``run`` and ``caller``."""

    @property
    def shares(self):
        return self.settings["shares"]

    def share_not_found(self) -> web.HTTPError:
        return web.HTTPError(404, policy.NOT_FOUND)

    async def viewable(self, share_id: str) -> ShareInfo:
        """The share if the caller may open it; the one 404 otherwise.

        The caller's identity (groups included) comes from the service's identity
        cache (``HubAuth.cache_max_age``). When access turns on group membership alone,
        the groups are asked of the hub afresh, so a removal from a group ends access
        at once; views of shares for everyone or named users cost no hub call."""
        try:
            info = await self.run(self.shares.lookup, share_id)
        except ShareNotFound:
            raise self.share_not_found() from None
        user, groups, now = self.caller.user, self.caller.groups, time.time()
        if policy.decided_by_groups(info.state, user, now):
            groups = await self.current_groups()
        if not policy.may_view(info.state, user, groups, now):
            raise self.share_not_found()
        return info

    async def current_groups(self) -> frozenset[str]:
        """The caller's Hub groups as the hub has them now (not cached); none when the
        credential is no longer this user's or no longer valid."""
        return await current_groups(self.hub_auth, self.hub_auth.get_token(self), self.caller.user)
