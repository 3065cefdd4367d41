"""What every share handler (REST API and pages) has in common: the share store and
the one 404 that a missing, revoked, expired or not-yours share all answer."""

from __future__ import annotations

from tornado import web

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
        """The share if the caller may open it; the one 404 otherwise."""
        try:
            return await self.run(
                self.shares.for_viewer, self.caller.user, self.caller.groups, share_id
            )
        except ShareNotFound:
            raise self.share_not_found() from None
