"""Who is calling: the one identity check of the service, for HTTP and the handoff alike.

``identify(hub_auth, handler=…)`` (a tornado request: ``Authorization`` header or
the service's OAuth cookie) or ``identify(hub_auth, token=…)`` (a bare Hub token,
as the handoff socket receives it) asks the Hub whom the credential belongs to
and returns a ``Caller``. Access is decided by the Hub's scopes exactly as
``HubAuthenticated`` does for the service's access scopes
(``$JUPYTERHUB_OAUTH_ACCESS_SCOPES``) — a credential without them is
anonymous — and, unlike ``HubAuthenticated``, an empty set of access scopes
lets nobody in (fail closed). What a caller may do with results is
``policy``'s (pure) decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jupyterhub_civis.service import policy


@dataclass(frozen=True)
class Caller:
    """The identity a request acts with.

    ``user``: the Hub user whose results it reads and writes (``None``: nobody —
    no or bad credential, a service's token, missing access scope). ``admin``:
    it holds the explicit results-admin scope. ``groups``: the user's Hub groups
    when the credential may read them (per-group quotas), else empty.
    """

    user: str | None = None
    admin: bool = False
    groups: frozenset[str] = field(default_factory=frozenset)
    model: dict | None = field(default=None, repr=False, compare=False)

    @property
    def known(self) -> bool:
        """Whether the caller may act on results at all (its own, or any as admin)."""
        return self.user is not None or self.admin


ANONYMOUS = Caller()


def caller_from_model(model: dict | None, access_scopes, check_scopes) -> Caller:
    """The ``Caller`` for the Hub's identity model of a credential.

    ``check_scopes(required, model)`` is ``HubAuth.check_scopes``; it is passed in
    so this stays a plain function."""
    if not model or not access_scopes or not check_scopes(access_scopes, model):
        return ANONYMOUS
    groups = model.get("groups") or []
    return Caller(
        user=policy.owner_of_caller(model),
        admin=policy.is_results_admin(model),
        groups=frozenset(g for g in groups if isinstance(g, str)),
        model=model,
    )


async def identify(hub_auth, *, handler=None, token: str | None = None) -> Caller:
    """Identify a tornado ``handler``'s request, or a bare Hub ``token``."""
    if handler is not None:
        model = await hub_auth.get_user(handler, sync=False)
    elif token:
        model = await hub_auth.user_for_token(token, sync=False)
    else:
        model = None
    return caller_from_model(model, hub_auth.access_scopes, hub_auth.check_scopes)


async def current_groups(hub_auth, token: str | None, user: str | None) -> frozenset[str]:
    """``user``'s Hub groups as the hub has them now (not the identity cache's); none
    when ``token`` is no longer ``user``'s or no longer valid."""
    model = token and await hub_auth.user_for_token(token, use_cache=False, sync=False)
    fresh = caller_from_model(model or None, hub_auth.access_scopes, hub_auth.check_scopes)
    return fresh.groups if fresh.user == user else frozenset()
