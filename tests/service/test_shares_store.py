"""Shares in the result store's database directly (SQLite and PostgreSQL): versions,
carried results pinned by the share, audience, expiry, revocation, audit."""

import asyncio
import json
import time
import uuid

import pytest
from civis_service_support import arrow_stream

from jupyterhub_civis.service.shares.audit import AuditLog
from jupyterhub_civis.service.shares.policy import Audience
from jupyterhub_civis.service.shares.store import ShareNotFound, ShareStore
from jupyterhub_civis.service.store import DurableStore, Pinned


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request, tmp_path):
    if request.param == "sqlite":
        db = f"sqlite:///{tmp_path}/meta.sqlite"
    else:
        db = request.getfixturevalue("fresh_pg_url")
    durable = DurableStore(db, str(tmp_path / "blobs"))
    yield durable, ShareStore(durable.session)
    durable.close()


def put(store, owner):
    up = store.begin_upload(owner)
    up.write(arrow_stream(10))
    return store.commit_upload(up, key="k", sql="select 1", connection="wh", rows=10).id


def notebook(results=(), env=None, text="hello") -> bytes:
    meta = {"jupyterhub_civis": {"queries": {f"key{i}": {"result_id": r} for i, r in enumerate(results)}}}
    if env is not None:
        meta["jupyterhub_civis"]["environment"] = env
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": meta,
        "cells": [{"cell_type": "markdown", "id": "a", "metadata": {}, "source": text}],
    }
    return json.dumps(nb, indent=1).encode()


def test_snapshot_versions_carry_and_pin_the_owners_results(stores):
    durable, shares = stores
    a = put(durable, "ann")
    b = put(durable, "ann")
    foreign = put(durable, "bob")
    env = {"environment": "py311", "packages": ["duckdb==1.1"]}
    raw = notebook([a, foreign], env)
    info = shares.create("ann", notebook=raw, audience=Audience(users=frozenset({"cy"})))
    assert len(info.id) == 32 and info.kind == "snapshot"
    assert [v.number for v in info.versions] == [1]
    assert info.versions[0].environment == env
    assert info.versions[0].results == [a]  # bob's result is not ann's to share
    assert info.missing_results == [foreign]
    assert shares.notebook(info.id, 1) == raw  # the bytes as saved

    # the share pins what it carries: the owner cannot delete it from under the link
    with pytest.raises(Pinned):
        durable.delete("ann", a)
    assert f"share:{info.id}" in durable.get("ann", a).pins

    # what viewers are shown (versions are cached per share) follows a new version on
    # this replica and on another one that had cached the first
    replica = ShareStore(durable.session)
    for store in (shares, replica):
        assert [v.number for v in store.for_viewer("cy", [], info.id).versions] == [1]

    # sharing again: a new version; older ones stay
    info = shares.add_version("ann", info.id, notebook([a, b], env, "v2"))
    for store in (shares, replica):
        seen = store.for_viewer("cy", [], info.id).versions
        assert [(v.number, v.results) for v in seen] == [(1, [a]), (2, sorted([a, b]))]
    assert [v.number for v in info.versions] == [1, 2]
    assert info.versions[1].results == sorted([a, b])
    assert json.loads(shares.notebook(info.id, 1))["cells"][0]["source"] == "hello"
    assert json.loads(shares.notebook(info.id, 2))["cells"][0]["source"] == "v2"
    # only the owner publishes versions
    with pytest.raises(ShareNotFound):
        shares.add_version("cy", info.id, notebook())

    # revoked: nobody opens it, its pins are gone, the owner may delete the results
    shares.revoke("ann", info.id)
    with pytest.raises(ShareNotFound):
        shares.for_viewer("cy", [], info.id)
    durable.delete("ann", b)
    with pytest.raises(ShareNotFound):
        shares.add_version("ann", info.id, notebook())


def test_audience_expiry_and_listings(stores):
    _, shares = stores
    raw = notebook()
    by_user = shares.create("ann", notebook=raw, audience=Audience(users=frozenset({"cy"})))
    by_group = shares.create("ann", notebook=raw, audience=Audience(groups=frozenset({"data"})))
    everyone = shares.create("ann", notebook=raw, audience=Audience(everyone=True), now=100.0)
    expiring = shares.create(
        "ann", notebook=raw, audience=Audience(everyone=True), expires=2e9, now=100.0
    )
    assert shares.for_viewer("cy", [], by_user.id).id == by_user.id
    assert shares.for_viewer("ann", [], by_user.id).id == by_user.id
    for user, groups in (("dee", []), ("dee", ["other"]), (None, [])):
        with pytest.raises(ShareNotFound):
            shares.for_viewer(user, groups, by_user.id)
    assert shares.for_viewer("dee", ["data"], by_group.id).id == by_group.id
    with pytest.raises(ShareNotFound):  # removed from the group: no access at once
        shares.for_viewer("dee", [], by_group.id)
    assert shares.for_viewer("zed", [], everyone.id).id == everyone.id
    with pytest.raises(ShareNotFound):
        shares.for_viewer("zed", [], expiring.id, now=2e9)
    mistyped = expiring.id[:-1] + ("x" if expiring.id[-1] != "x" else "y")
    for sid in (mistyped, uuid.uuid4().hex, "../" * 10 + "xx"):  # mistyped, never existed
        with pytest.raises(ShareNotFound):
            shares.for_viewer("zed", [], sid)

    listed = {s.id for s in shares.list_shared_with("dee", ["data"], now=1e9)}
    assert listed == {by_group.id, everyone.id, expiring.id}
    listed = {s.id for s in shares.list_shared_with("dee", ["data"], now=2e9)}
    assert listed == {by_group.id, everyone.id}
    assert shares.list_shared_with("ann", [], now=1e9) == []  # one's own are not "shared with"
    assert {s.id for s in shares.list_owned("ann")} == {
        by_user.id, by_group.id, everyone.id, expiring.id
    }

    # the owner changes audience and expiry; only the owner may
    with pytest.raises(ShareNotFound):
        shares.update("cy", by_user.id, audience=Audience(everyone=True))
    shares.update("ann", by_user.id, audience=Audience(users=frozenset({"dee"})))
    with pytest.raises(ShareNotFound):
        shares.for_viewer("cy", [], by_user.id)
    assert shares.for_viewer("dee", [], by_user.id).id == by_user.id
    shares.update("ann", expiring.id, expires=None, set_expires=True)
    assert shares.for_viewer("zed", [], expiring.id, now=3e9).expires is None


def test_results_through_a_share_and_the_audit(stores):
    durable, shares = stores
    a = put(durable, "ann")
    other = put(durable, "ann")
    info = shares.create("ann", notebook=notebook([a]), audience=Audience(users=frozenset({"cy"})))
    assert shares.result_grant("cy", [], info.id, a) == "ann"
    for user, rid in (("cy", other), ("dee", a)):
        with pytest.raises(ShareNotFound):
            shares.result_grant(user, [], info.id, rid)
    shares.record(info.id, "cy", "view", 1, now=10.0)
    shares.record(info.id, "cy", "copy", 1, now=11.0)
    assert [(e.user, e.action) for e in shares.events("ann", info.id)] == [
        ("cy", "copy"), ("cy", "view")
    ]
    with pytest.raises(ShareNotFound):
        shares.events("cy", info.id)
    # renders are cached per version (first one wins)
    assert shares.rendered(info.id, 1) is None
    shares.keep_rendered(info.id, 1, b"<p>one</p>")
    shares.keep_rendered(info.id, 1, b"<p>two</p>")
    assert shares.rendered(info.id, 1) == b"<p>one</p>"


def test_bad_notebooks_write_nothing(stores):
    _, shares = stores
    for raw in (b"{", b"[]", b'{"cells": [], "nbformat": 3}', b'{"nbformat": 4}'):
        with pytest.raises(ValueError, match="notebook"):
            shares.create("ann", notebook=raw, audience=Audience(everyone=True))
    assert shares.list_owned("ann") == []


async def test_audit_log_queues_views_and_commits_them_together(stores):
    """A view only queues its audit event; one writer commits what is queued in one
    transaction, and readers that flush first see every view answered so far."""
    durable, shares = stores
    info = shares.create("ann", notebook=notebook(), audience=Audience(everyone=True))
    batches = []

    def write_many(events):
        batches.append(len(events))
        shares.record_many(events)

    async def run(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    audit = AuditLog(write_many, run)
    before = time.time()
    for i in range(50):
        audit.record(info.id, f"viewer{i}", "view", 1)
    await audit.flush()
    events = shares.events("ann", info.id)
    assert sorted(e.user for e in events) == sorted(f"viewer{i}" for i in range(50))
    assert all(e.action == "view" and e.number == 1 and e.at >= before for e in events)
    assert sum(batches) == 50 and len(batches) < 50  # group commits, not one per view
    audit.record(info.id, "late", "copy", 1)
    await audit.close()
    assert shares.events("ann", info.id, limit=1)[0].user == "late"


def test_a_lookup_sees_every_change_made_by_another_replica_at_once(stores):
    """Lookups are served from memory while the share row's stamp is unchanged; a change
    made through another store on the same database (another replica) is seen by the
    next lookup, even changes made at one clock reading."""
    durable, here = stores
    there = ShareStore(durable.session)
    now = time.time()
    info = here.create("ann", notebook=notebook(), audience=Audience(users=frozenset({"cy"})),
                       now=now)
    assert here.lookup(info.id).audience.users == {"cy"}
    assert here.lookup(info.id) is not here.lookup(info.id)  # each caller its own copy

    there.update("ann", info.id, audience=Audience(users=frozenset({"dee"})), now=now)
    assert here.lookup(info.id).audience.users == {"dee"}
    there.update("ann", info.id, audience=Audience(groups=frozenset({"g"})), now=now)
    assert here.lookup(info.id).audience == Audience(groups=frozenset({"g"}))

    there.add_version("ann", info.id, notebook(text="two"), now=now)
    assert [v.number for v in here.lookup(info.id).versions] == [1, 2]

    there.revoke("ann", info.id, now=now)
    assert here.lookup(info.id).revoked is not None
    with pytest.raises(ShareNotFound):
        here.for_viewer("dee", {"g"}, info.id)
