"""Pure rules of shared-notebook links: ids, who may see a share, what a notebook carries.

No tornado, no SQLAlchemy, no I/O: tested directly (tests/service/test_shares_policy.py).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from jupyterhub_civis.protocol import valid_result_id

#: The one message for a share that does not exist, is not for the caller, was revoked,
#: has expired or was mistyped: a viewer can never tell these apart.
NOT_FOUND = "share not found"

KINDS = ("snapshot", "live", "report")
#: A pin on each result a live share's versions carry: ``share:<id>``.
PIN_PREFIX = "share:"

#: 24 random bytes (192 bits) from ``secrets``, URL-safe base64: 32 characters.
ID_BYTES = 24
SHARE_ID_RE = re.compile(r"\A[A-Za-z0-9_-]{32}\Z")


def new_share_id() -> str:
    return secrets.token_urlsafe(ID_BYTES)


def valid_share_id(value: object) -> bool:
    return isinstance(value, str) and bool(SHARE_ID_RE.match(value))


def pin_ref(share_id: str) -> str:
    return PIN_PREFIX + share_id


@dataclass(frozen=True)
class Audience:
    """Who may open a share besides its owner. Never anonymous: ``everyone`` means every
    user who can log in to the hub."""

    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    everyone: bool = False

    @property
    def empty(self) -> bool:
        return not (self.users or self.groups or self.everyone)


@dataclass(frozen=True)
class ShareState:
    """What access depends on, of one share."""

    owner: str
    audience: Audience
    expires: float | None = None
    revoked: float | None = None


def is_live(state: ShareState, now: float) -> bool:
    """Not revoked and not expired (an expiry is the first instant it no longer works)."""
    if state.revoked is not None:
        return False
    return state.expires is None or now < state.expires


def may_view(state: ShareState, user: str | None, groups: Iterable[str], now: float) -> bool:
    """Whether Hub ``user`` (in Hub ``groups``) may open the share now.

    The owner may always see their own share while it is live (and manage it even
    when it is not: that is the owner's listing, not this rule). Nobody else may once
    it is revoked or expired. ``None`` (no Hub user) never may.
    """
    if not user or not is_live(state, now):
        return False
    if user == state.owner:
        return True
    aud = state.audience
    return aud.everyone or user in aud.users or bool(aud.groups & set(groups))


def decided_by_groups(state: ShareState, user: str | None, now: float) -> bool:
    """Whether ``may_view`` for ``user`` turns on their Hub groups alone (a live share
    whose audience names groups, neither everyone nor this user by name): only then
    must the groups be current, since removing someone from a group ends their access
    at once."""
    if not user or not is_live(state, now) or user == state.owner:
        return False
    aud = state.audience
    return bool(aud.groups) and not aud.everyone and user not in aud.users


class GroupsNeeded(Exception):
    """Only a share open to some of the caller's groups could decide: ask again with
    the groups as the hub has them now."""


def grant_owner(
    states: Iterable[ShareState],
    user: str | None,
    groups: Iterable[str],
    now: float,
    *,
    groups_current: bool,
) -> str | None:
    """The owner whose result ``user`` may read through one of ``states`` (the live
    shares carrying it), or ``None``.

    Shares open to everyone or to ``user`` by name decide at once. Where only a group
    audience could decide, ``groups`` must be current (``groups_current``), else
    ``GroupsNeeded``: a removal from a group ends the read at once, as it ends views."""
    states = list(states)
    for state in states:
        if may_view(state, user, (), now):
            return state.owner
    if not any(decided_by_groups(state, user, now) for state in states):
        return None
    if not groups_current:
        raise GroupsNeeded()
    for state in states:
        if may_view(state, user, groups, now):
            return state.owner
    return None


def may_manage(state: ShareState, user: str | None) -> bool:
    """Only the owner changes, re-publishes or revokes a share."""
    return bool(user) and user == state.owner


def expiry_refusal(expires: float | None, now: float) -> str | None:
    if expires is not None and expires <= now:
        return "expires: must be in the future (seconds since the epoch, UTC)"
    return None


# ---------------------------------------------------------------- what a notebook carries


def environment_record(notebook: dict) -> dict:
    """``metadata.jupyterhub_civis.environment`` of a notebook (``{}`` if absent or odd)."""
    meta = notebook.get("metadata")
    civis = meta.get("jupyterhub_civis") if isinstance(meta, dict) else None
    env = civis.get("environment") if isinstance(civis, dict) else None
    return env if isinstance(env, dict) else {}


def pinned_results(notebook: dict) -> list[str]:
    """The result ids the notebook's reproducible queries pin
    (``metadata.jupyterhub_civis.queries``: cache key -> ``{"result_id", …}``, written by
    the query cache), sorted, without repeats; anything malformed is ignored."""
    meta = notebook.get("metadata")
    civis = meta.get("jupyterhub_civis") if isinstance(meta, dict) else None
    queries = civis.get("queries") if isinstance(civis, dict) else None
    if not isinstance(queries, dict):
        return []
    return sorted(
        {
            q["result_id"]
            for q in queries.values()
            if isinstance(q, dict) and valid_result_id(q.get("result_id"))
        }
    )


def parse_notebook(raw: bytes) -> dict:
    """The notebook JSON (``ValueError`` with a message a person can act on)."""
    try:
        nb = json.loads(raw)
    except (ValueError, RecursionError):
        raise ValueError("notebook: is not a valid .ipynb (JSON) file") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ValueError("notebook: is not a Jupyter notebook (no list of cells)")
    if nb.get("nbformat") != 4:
        raise ValueError("notebook: only nbformat 4 notebooks can be shared; save it in JupyterLab")
    return nb


def display_title(title: str, path: str) -> str:
    """What a share is called: its title, else its notebook's file name."""
    return title or path.rsplit("/", 1)[-1] or "Untitled notebook"
