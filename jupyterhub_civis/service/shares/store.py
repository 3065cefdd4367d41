"""``ShareStore``: shares, their audience, versions, carried results and audit events,
in the result store's database (one transaction per change: no partial writes).

A version's notebook bytes (and their cached rendering) are kept in the database
itself, so a share is complete the moment its row commits — on every replica.
Every method is blocking; handlers call them from the service's I/O pool.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time

import sqlalchemy as sa
from sqlalchemy.orm import Session

from jupyterhub_civis.service.models import Pin, Result
from jupyterhub_civis.service.shares import policy
from jupyterhub_civis.service.shares.cache import StampedCache
from jupyterhub_civis.service.shares.info import Event, ShareInfo, VersionInfo
from jupyterhub_civis.service.shares.models import (
    Share,
    ShareEvent,
    ShareMember,
    ShareResult,
    ShareVersion,
)


class ShareNotFound(Exception):
    """Missing, not for the caller, revoked, expired or mistyped: never told apart."""


def touch(row: Share, now: float) -> None:
    """Mark a change of ``row``: ``updated`` moves strictly forward, even for two
    changes at one clock reading, since the share cache is validated by it."""
    row.updated = max(now, row.updated + 1e-6) if row.updated is not None else now


#: the stamp a cached share is checked against (``cache``): one primary-key read
_STAMP = sa.select(Share.updated).where(Share.id == sa.bindparam("share_id"))


def set_audience(s: Session, share_id: str, audience: policy.Audience) -> None:
    s.execute(sa.delete(ShareMember).where(ShareMember.share_id == share_id))
    s.add_all(ShareMember(share_id=share_id, kind="user", name=u) for u in audience.users)
    s.add_all(ShareMember(share_id=share_id, kind="group", name=g) for g in audience.groups)


def add_version(
    s: Session, row: Share, raw: bytes, now: float, *, number: int | None = None,
    environment: dict | None = None,
) -> list[str]:
    """Publish ``raw`` as version ``number`` (default: the next) of ``row`` in session
    ``s``; carry (and pin) the owner's results it pins. ``environment`` stands in for a
    notebook that recorded none. Returns the pinned ids the owner does not hold."""
    nb = policy.parse_notebook(raw)
    if number is None:
        latest = s.scalar(
            sa.select(sa.func.max(ShareVersion.number)).where(ShareVersion.share_id == row.id)
        )
        number = (latest or 0) + 1
    s.add(
        ShareVersion(
            share_id=row.id,
            number=number,
            created=now,
            notebook=raw,
            size=len(raw),
            sha256=hashlib.sha256(raw).hexdigest(),
            environment=json.dumps(policy.environment_record(nb) or environment or {}),
        )
    )
    wanted = policy.pinned_results(nb)
    held = set(
        s.scalars(
            sa.select(Result.id).where(Result.id.in_(wanted) & (Result.owner == row.owner))
        )
    ) if wanted else set()
    s.flush()
    ref = policy.pin_ref(row.id)
    pinned = set(
        s.scalars(sa.select(Pin.result_id).where(Pin.ref == ref, Pin.result_id.in_(held)))
    ) if held else set()
    for rid in sorted(held):
        s.add(ShareResult(share_id=row.id, number=number, result_id=rid))
        if rid not in pinned:
            s.add(Pin(result_id=rid, ref=ref, server="", created=now))
    touch(row, now)
    return [rid for rid in wanted if rid not in held]


class ShareStore:
    def __init__(self, session_factory):
        self.session = session_factory
        self.version_cache: StampedCache[list[VersionInfo]] = StampedCache()
        self.info_cache: StampedCache[ShareInfo] = StampedCache()

    # -- reading rows
    def _audience(self, s: Session, share_id: str) -> tuple[set[str], set[str]]:
        users, groups = set(), set()
        for kind, name in s.execute(
            sa.select(ShareMember.kind, ShareMember.name).where(ShareMember.share_id == share_id)
        ):
            (users if kind == "user" else groups).add(name)
        return users, groups

    def _versions(self, s: Session, share_id: str) -> list[VersionInfo]:
        carried: dict[int, list[str]] = {}
        for number, rid in s.execute(
            sa.select(ShareResult.number, ShareResult.result_id).where(
                ShareResult.share_id == share_id
            )
        ):
            carried.setdefault(number, []).append(rid)
        rows = s.execute(
            sa.select(
                ShareVersion.number,
                ShareVersion.created,
                ShareVersion.size,
                ShareVersion.sha256,
                ShareVersion.environment,
            )
            .where(ShareVersion.share_id == share_id)
            .order_by(ShareVersion.number)
        )
        return [
            VersionInfo(n, created, size, digest, json.loads(env), sorted(carried.get(n, [])))
            for n, created, size, digest, env in rows
        ]

    def _info(self, s: Session, row: Share, versions=None) -> ShareInfo:
        users, groups = self._audience(s, row.id)
        if versions is None:
            versions = self._versions(s, row.id)
        return ShareInfo(
            row.id,
            row.owner,
            row.kind,
            row.title,
            row.path,
            row.server,
            row.created,
            row.updated,
            row.expires,
            row.revoked,
            policy.Audience(frozenset(users), frozenset(groups), row.everyone),
            versions,
        )

    def _row(self, s: Session, share_id: str) -> Share:
        if not policy.valid_share_id(share_id):
            raise ShareNotFound()
        row = s.get(Share, share_id)
        if row is None:
            raise ShareNotFound()
        return row

    # -- writing
    def create(
        self,
        owner: str,
        *,
        notebook: bytes,
        audience: policy.Audience,
        kind: str = "snapshot",
        title: str = "",
        path: str = "",
        server: str = "",
        expires: float | None = None,
        now: float | None = None,
    ) -> ShareInfo:
        now = time.time() if now is None else now
        with self.session.begin() as s:
            row = Share(
                id=policy.new_share_id(),
                owner=owner,
                kind=kind,
                title=title,
                path=path,
                server=server,
                everyone=audience.everyone,
                created=now,
                updated=now,
                expires=expires,
            )
            s.add(row)
            s.flush()
            set_audience(s, row.id, audience)
            missing = add_version(s, row, notebook, now)
            s.flush()
            info = self._info(s, row)
        info.missing_results = missing
        return info

    def create_live(
        self,
        owner: str,
        *,
        server: str,
        code_id: str,
        expires: float | None,
        title: str = "",
        now: float | None = None,
    ) -> ShareInfo:
        """Record a JupyterHub share code (its id only; the code is the hub's secret)."""
        now = time.time() if now is None else now
        with self.session.begin() as s:
            row = Share(
                id=policy.new_share_id(),
                owner=owner,
                kind="live",
                title=title,
                path="",
                server=server,
                everyone=True,  # whoever holds the code and can log in (the hub decides)
                created=now,
                updated=now,
                expires=expires,
                live_code_id=code_id,
            )
            s.add(row)
            s.flush()
            return self._info(s, row)

    def live_code(self, owner: str, share_id: str) -> tuple[str, str] | None:
        """(server, share code id) of the owner's live share; None for other kinds."""
        with self.session() as s:
            row = self._owned(s, owner, share_id)
            return (row.server, row.live_code_id) if row.kind == "live" else None

    def add_version(
        self, owner: str, share_id: str, notebook: bytes, path: str | None = None, now=None
    ) -> ShareInfo:
        now = time.time() if now is None else now
        with self.session.begin() as s:
            row = self._owned(s, owner, share_id)
            if row.revoked is not None or row.kind != "snapshot":
                raise ShareNotFound()
            if path is not None:
                row.path = path
            missing = add_version(s, row, notebook, now)
            s.flush()
            info = self._info(s, row)
        info.missing_results = missing
        return info

    def _owned(self, s: Session, owner: str, share_id: str) -> Share:
        row = self._row(s, share_id)
        if not policy.may_manage(policy.ShareState(row.owner, policy.Audience()), owner):
            raise ShareNotFound()
        return row

    def update(
        self,
        owner: str,
        share_id: str,
        *,
        audience: policy.Audience | None = None,
        expires: float | None = None,
        set_expires: bool = False,
        title: str | None = None,
        now: float | None = None,
    ) -> ShareInfo:
        now = time.time() if now is None else now
        with self.session.begin() as s:
            row = self._owned(s, owner, share_id)
            if row.revoked is not None:
                raise ShareNotFound()
            if audience is not None:
                row.everyone = audience.everyone
                set_audience(s, row.id, audience)
            if set_expires:
                row.expires = expires
            if title is not None:
                row.title = title
            touch(row, now)
            s.flush()
            return self._info(s, row)

    def revoke(self, owner: str, share_id: str, now: float | None = None) -> ShareInfo:
        """The link stops working for everyone; its results are no longer pinned by it
        (they become the owner's ordinary results again). Idempotent."""
        now = time.time() if now is None else now
        with self.session.begin() as s:
            row = self._owned(s, owner, share_id)
            if row.revoked is None:
                row.revoked = now
                touch(row, now)
            s.execute(sa.delete(Pin).where(Pin.ref == policy.pin_ref(row.id)))
            return self._info(s, row)

    # -- viewing
    def for_viewer(
        self, user: str | None, groups, share_id: str, now: float | None = None
    ) -> ShareInfo:
        """The share as ``user`` may see it; ``ShareNotFound`` for every refusal."""
        now = time.time() if now is None else now
        info = self.lookup(share_id)
        if not policy.may_view(info.state, user, groups, now):
            raise ShareNotFound()
        return info

    def lookup(self, share_id: str) -> ShareInfo:
        """The share whoever asks (``ShareNotFound`` if there is none): the caller
        decides access with ``policy.may_view``. Read afresh only when it changed."""
        if not policy.valid_share_id(share_id):
            raise ShareNotFound()
        with self.session() as s:
            stamp = s.connection().scalar(_STAMP, {"share_id": share_id})
            if stamp is None:
                raise ShareNotFound()
            info = self.info_cache.get(share_id, stamp)
            if info is None:
                info = self._read(s, share_id)
                self.info_cache.put(share_id, info.updated, info)
        return dataclasses.replace(info)  # the caller's own: it may fill missing_results

    def _read(self, s: Session, share_id: str) -> ShareInfo:
        row = self._row(s, share_id)
        latest = s.scalar(
            sa.select(sa.func.max(ShareVersion.number)).where(ShareVersion.share_id == row.id)
        )
        versions = self.version_cache.get(row.id, latest or 0)
        if versions is None:
            versions = self._versions(s, row.id)
            self.version_cache.put(row.id, latest or 0, versions)
        return self._info(s, row, versions=versions)

    def owned(self, owner: str, share_id: str) -> ShareInfo:
        with self.session() as s:
            return self._info(s, self._owned(s, owner, share_id))

    def notebook(self, share_id: str, number: int) -> bytes:
        with self.session() as s:
            raw = s.scalar(
                sa.select(ShareVersion.notebook).where(
                    ShareVersion.share_id == share_id, ShareVersion.number == number
                )
            )
        if raw is None:
            raise ShareNotFound()
        return raw

    def rendered(self, share_id: str, number: int) -> bytes | None:
        with self.session() as s:
            return s.scalar(
                sa.select(ShareVersion.rendered).where(
                    ShareVersion.share_id == share_id, ShareVersion.number == number
                )
            )

    def keep_rendered(self, share_id: str, number: int, packed: bytes, replace=False) -> None:
        """Keep a version's rendering (``render.pack``) unless one is kept already;
        ``replace``: over an older kind of rendering (renderings are deterministic)."""
        kept = ShareVersion.share_id == share_id, ShareVersion.number == number
        if not replace:
            kept += (ShareVersion.rendered.is_(None),)
        with self.session.begin() as s:
            s.execute(sa.update(ShareVersion).where(*kept).values(rendered=packed))

    def list_owned(self, owner: str) -> list[ShareInfo]:
        with self.session() as s:
            rows = s.scalars(
                sa.select(Share).where(Share.owner == owner).order_by(Share.updated.desc())
            )
            return [self._info(s, r) for r in rows]

    def list_shared_with(self, user: str, groups, now: float | None = None) -> list[ShareInfo]:
        """Live shares of others that ``user`` (in ``groups``) may open, newest first."""
        now = time.time() if now is None else now
        groups = set(groups)
        members = sa.select(ShareMember.share_id).where(
            ((ShareMember.kind == "user") & (ShareMember.name == user))
            | ((ShareMember.kind == "group") & ShareMember.name.in_(groups or {""}))
        )
        query = (
            sa.select(Share)
            .where(
                (Share.owner != user)
                & Share.revoked.is_(None)
                & (Share.expires.is_(None) | (Share.expires > now))
                & (Share.everyone | Share.id.in_(members))
            )
            .order_by(Share.updated.desc())
        )
        with self.session() as s:
            infos = [self._info(s, r) for r in s.scalars(query)]
        return [i for i in infos if policy.may_view(i.state, user, groups, now)]

    # -- results through a share
    def result_grant(
        self, user: str | None, groups, share_id: str, result_id: str, now=None
    ) -> str:
        """The owner of ``result_id`` when ``user`` may read it through ``share_id`` (one of
        the results the share's versions carry); ``ShareNotFound`` otherwise."""
        info = self.for_viewer(user, groups, share_id, now)
        if not info.carries(result_id):
            raise ShareNotFound()
        return info.owner

    def grant_owner(
        self, user: str | None, groups, result_id: str, now=None, *, groups_current=False
    ) -> str | None:
        """The owner of ``result_id`` if some live share carrying it is open to ``user``
        (``policy.grant_owner``: ``GroupsNeeded`` when only stale groups could decide)."""
        now = time.time() if now is None else now
        query = (
            sa.select(Share)
            .join(ShareResult, ShareResult.share_id == Share.id)
            .where(
                (ShareResult.result_id == result_id)
                & Share.revoked.is_(None)
                & (Share.expires.is_(None) | (Share.expires > now))
            )
            .distinct()
        )
        with self.session() as s:
            states = []
            for row in s.scalars(query):
                users, grps = self._audience(s, row.id)
                aud = policy.Audience(frozenset(users), frozenset(grps), row.everyone)
                states.append(policy.ShareState(row.owner, aud, row.expires, row.revoked))
        return policy.grant_owner(states, user, groups, now, groups_current=groups_current)

    # -- audit
    def record(self, share_id: str, user: str, action: str, number: int, now=None) -> None:
        now = time.time() if now is None else now
        self.record_many([(share_id, user, action, number, now)])

    def record_many(self, events) -> None:
        """Audit ``(share_id, user, action, number, at)`` events in one transaction."""
        with self.session.begin() as s:
            s.add_all(
                ShareEvent(share_id=i, user=u, action=a, number=n, at=t) for i, u, a, n, t in events
            )

    def events(self, owner: str, share_id: str, limit: int = 1000) -> list[Event]:
        with self.session() as s:
            self._owned(s, owner, share_id)
            rows = s.execute(
                sa.select(ShareEvent.user, ShareEvent.action, ShareEvent.number, ShareEvent.at)
                .where(ShareEvent.share_id == share_id)
                .order_by(ShareEvent.at.desc(), ShareEvent.id.desc())
                .limit(limit)
            )
            return [Event(*r) for r in rows]
