"""The pure sharing rules: ids, audience, expiry, revocation, what a notebook carries."""

import json

import pytest

from jupyterhub_civis.service.shares import policy
from jupyterhub_civis.service.shares.policy import Audience, ShareState


def test_ids_are_random_192_bit_and_checked_by_shape():
    ids = {policy.new_share_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(policy.valid_share_id(i) and len(i) == 32 for i in ids)
    for bad in ("", "a" * 31, "a" * 33, "../" + "a" * 29, None, 5, "a" * 31 + "/"):
        assert not policy.valid_share_id(bad)


@pytest.mark.parametrize(
    "audience,user,groups,ok",
    [
        (Audience(users=frozenset({"cy"})), "cy", [], True),
        (Audience(users=frozenset({"cy"})), "dee", [], False),
        (Audience(groups=frozenset({"data"})), "dee", ["data"], True),
        (Audience(groups=frozenset({"data"})), "dee", ["ops"], False),
        (Audience(everyone=True), "anyone", [], True),
        (Audience(everyone=True), None, [], False),  # never anonymous
        (Audience(everyone=True), "", [], False),
        (Audience(), "ann", [], True),  # the owner
    ],
)
def test_may_view(audience, user, groups, ok):
    assert policy.may_view(ShareState("ann", audience), user, groups, now=10) is ok


@pytest.mark.parametrize(
    "audience,user,decided",
    [
        (Audience(groups=frozenset({"data"})), "dee", True),
        (Audience(groups=frozenset({"data"}), users=frozenset({"dee"})), "dee", False),
        (Audience(groups=frozenset({"data"}), everyone=True), "dee", False),
        (Audience(users=frozenset({"dee"})), "dee", False),
        (Audience(groups=frozenset({"data"})), "ann", False),  # the owner
        (Audience(groups=frozenset({"data"})), None, False),
    ],
)
def test_decided_by_groups_only_when_groups_alone_could_admit(audience, user, decided):
    assert policy.decided_by_groups(ShareState("ann", audience), user, now=10) is decided
    closed = ShareState("ann", audience, revoked=5)
    assert policy.decided_by_groups(closed, user, now=10) is False


def test_revoked_or_expired_is_closed_to_everyone_even_the_owner_viewer():
    aud = Audience(everyone=True)
    assert not policy.may_view(ShareState("ann", aud, expires=10), "cy", [], now=10)
    assert policy.may_view(ShareState("ann", aud, expires=10), "cy", [], now=9.9)
    assert not policy.may_view(ShareState("ann", aud, revoked=5), "ann", [], now=10)
    assert policy.may_manage(ShareState("ann", aud, revoked=5), "ann")
    assert not policy.may_manage(ShareState("ann", aud), "cy")
    assert not policy.may_manage(ShareState("ann", aud), None)


def test_a_result_read_through_a_share_asks_current_groups_only_where_they_decide():
    by_name = ShareState("ann", Audience(users=frozenset({"cy"})))
    to_group = ShareState("bob", Audience(groups=frozenset({"data"})))
    gone = ShareState("eve", Audience(everyone=True), revoked=1.0)

    def owner(states, user, groups, current):
        return policy.grant_owner(states, user, groups, 10.0, groups_current=current)

    # everyone or by name: decided without the groups (no hub call)
    assert owner([to_group, by_name], "cy", [], False) == "ann"
    assert owner([ShareState("eve", Audience(everyone=True))], "cy", [], False) == "eve"
    assert owner([gone], "cy", [], False) is None  # revoked: nothing to ask
    assert owner([by_name], "dee", ["data"], False) is None  # no group audience: no
    # a group audience alone: the cached groups never decide, either way
    for cached in (["data"], []):
        with pytest.raises(policy.GroupsNeeded):
            owner([to_group], "dee", cached, False)
    assert owner([to_group], "dee", ["data"], True) == "bob"
    assert owner([to_group], "dee", ["ops"], True) is None  # removed from the group
    assert owner([to_group], "bob", [], False) == "bob"  # its owner: no groups needed


def test_environment_and_pinned_results_from_the_notebook():
    rid = "a" * 32
    nb = {
        "metadata": {
            "jupyterhub_civis": {
                "environment": {"environment": "py311", "packages": []},
                "queries": {
                    "k1": {"result_id": rid, "sql": "select 1"},
                    "k2": {"result_id": rid},
                    "k3": {"result_id": "../../etc/passwd"},
                    "k4": "garbage",
                },
            }
        },
        "cells": [],
    }
    assert policy.environment_record(nb)["environment"] == "py311"
    assert policy.pinned_results(nb) == [rid]
    assert policy.environment_record({"metadata": {"jupyterhub_civis": []}}) == {}
    assert policy.pinned_results({"metadata": None}) == []


def test_parse_notebook_messages_say_what_to_do():
    ok = {"nbformat": 4, "cells": []}
    assert policy.parse_notebook(json.dumps(ok).encode()) == ok
    with pytest.raises(ValueError, match="not a valid .ipynb"):
        policy.parse_notebook(b"\x00")
    with pytest.raises(ValueError, match="only nbformat 4"):
        policy.parse_notebook(b'{"nbformat": 3, "cells": []}')
    with pytest.raises(ValueError, match="valid .ipynb"):
        policy.parse_notebook(b"[" * 100000)


def test_titles():
    assert policy.display_title("", "a/b/report.ipynb") == "report.ipynb"
    assert policy.display_title("Q3", "a/b/report.ipynb") == "Q3"
    assert policy.display_title("", "") == "Untitled notebook"
