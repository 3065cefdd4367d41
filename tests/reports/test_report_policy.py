"""A report's audience is a share audience; who may refresh (pure rules)."""

import pytest
from pydantic import ValidationError

from jupyterhub_civis.service.reports import policy
from jupyterhub_civis.service.reports.sharing import environment_record
from jupyterhub_civis.service.shares.policy import Audience

NB = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def request(**body):
    return policy.ReportRequest(path="r.ipynb", notebook=NB, **body)


def test_audience_from_the_share_body_or_the_viewers_shorthand():
    assert policy.audience(request()) == Audience()
    assert policy.audience(request(audience={"groups": ["sales"], "users": ["ann"]})) == Audience(
        frozenset({"ann"}), frozenset({"sales"}), False
    )
    assert policy.audience(request(viewers=["ann", "*"])) == Audience(frozenset({"ann"}), everyone=True)
    with pytest.raises(ValidationError, match="not both"):
        request(audience={"everyone": True}, viewers=["ann"])
    with pytest.raises(ValidationError, match="name at least one"):
        request(audience={})


def test_who_may_refresh():
    assert policy.may_refresh("ann", policy.OWNER, "ann")
    assert not policy.may_refresh("ann", policy.OWNER, "bob")
    assert policy.may_refresh("ann", policy.AUDIENCE, "bob")
    assert not policy.may_refresh("ann", policy.OWNER, None)


def test_a_runs_environment_as_a_share_record():
    assert environment_record({"environment": "python", "packages": ["x==1"]}) == {
        "name": "python", "packages": ["x==1"]
    }
    assert environment_record({}) == {}
