"""Pure policy modules: cache keys, modes, eviction, notebook pins."""

from __future__ import annotations

import pytest

from jupyterhub_civis import retention
from jupyterhub_civis.errors import InvalidInput
from jupyterhub_civis.query_cache import keys, modes, pins
from jupyterhub_civis.query_cache.warehouse import Connection

BASE = dict(connection_identity="postgresql://u@h/db", principal="u", dialect="postgres")


def key(sql, **kw):
    return keys.cache_key(**{**BASE, "sql": sql, **kw})


@pytest.mark.parametrize(
    "a, b",
    [
        ("select 'a b' from t", "select 'a  b' from t"),
        ("select 'x' as v", "select 'X' as v"),
        ("select 1 -- first\n", "select 1 -- second\n"),
        ("select 1 /* tag: a */", "select 1 /* tag: b */"),
        ("select 1 /* a */", "select 1"),
        ("select $$a  b$$", "select $$a b$$"),
        ('select "Col A" from t', 'select "Col  A" from t'),
        ("select 'it''s'", "select 'its'"),
        ("select a - -1", "select a --1"),
        ("select * from t where x = 'a' -- '\n", "select * from t where x = 'a'"),
        ("select 1", "SELECT 1"),
    ],
)
def test_different_queries_never_share_a_key(a, b):
    assert key(a) != key(b)


def test_whitespace_between_tokens_does_not_change_the_key():
    assert key("select id,\n  name from t  where id = 1") == key(
        "select id, name from t where id = 1"
    )


def test_untokenizable_sql_falls_back_to_exact_text():
    weird = "select 'unterminated"
    assert keys.canonical_sql(weird, "postgres") == ["text", weird]
    assert key(weird) != key(weird + " ")


@pytest.mark.parametrize(
    "change",
    [
        {"params": [1]},
        {"params": ["1"]},
        {"params": [1.0]},
        {"params": [True]},
        {"principal": "other"},
        {"connection_identity": "postgresql://u@h/other"},
        {"settings": {"TimeZone": "UTC"}},
    ],
)
def test_everything_that_changes_results_changes_the_key(change):
    base = key("select $1", params=[2])
    assert key("select $1", **{"params": [2], **change}) != base
    assert (
        len(
            {
                key("select $1", params=[1]),
                key("select $1", params=["1"]),
                key("select $1", params=[1.0]),
                key("select $1", params=[True]),
            }
        )
        == 4
    )


def test_connection_identity_hides_password_and_principal_comes_from_url():
    c = Connection.from_config("w", "postgresql://analyst:s3cret@db:5432/sales")
    assert "s3cret" not in c.identity
    assert c.principal() == "analyst"
    templ = Connection.from_config("w", "postgresql://analyst:${PW}@db/sales")
    assert templ.principal({"PW": "x"}) == "analyst"
    assert templ.identity == "postgresql://analyst:***@db/sales"


def test_scrub_removes_secrets(monkeypatch):
    monkeypatch.setenv("CIVIS_TEST_PW", "hunter2hunter2")
    c = Connection.from_config("w", "postgresql://a:${CIVIS_TEST_PW}@db/x")
    assert "hunter2hunter2" not in c.scrub(
        "failed for postgresql://a:hunter2hunter2@db/x (hunter2hunter2)"
    )


def test_mode_resolution():
    assert modes.resolve_mode(None, None, "refresh") == "refresh"
    assert modes.resolve_mode(None, "reproducible", "refresh") == "reproducible"
    assert modes.resolve_mode("refresh", "reproducible", "reproducible") == "refresh"
    md = {"jupyterhub_civis": {"deliverable": "analysis"}}
    assert modes.notebook_default_mode(md) == "reproducible"
    assert modes.notebook_default_mode({"jupyterhub_civis": {"deliverable": "report"}}) == "refresh"
    assert (
        modes.notebook_default_mode(
            {"jupyterhub_civis": {"query_mode": "refresh", "deliverable": "analysis"}}
        )
        == "refresh"
    )
    assert modes.notebook_default_mode({}) is None
    with pytest.raises(InvalidInput) as e:
        modes.validate_mode("later")
    assert e.value.field == "mode"
    with pytest.raises(InvalidInput) as e:
        modes.validate_max_age("10")
    assert e.value.field == "max_age"


@pytest.mark.parametrize(
    "mode, pinned, available, latest_age, max_age, expected",
    [
        ("reproducible", "p", True, None, None, "pinned"),
        ("reproducible", "p", False, None, None, "missing-pin"),
        ("reproducible", None, False, None, None, "run"),
        ("refresh", "p", True, None, None, "run"),
        ("refresh", None, False, 5.0, 10.0, "reuse"),
        ("refresh", None, False, 11.0, 10.0, "run"),
        ("reproducible", None, False, 5.0, 10.0, "reuse"),
        ("reproducible", "p", True, 5.0, 10.0, "pinned"),
    ],
)
def test_decide(mode, pinned, available, latest_age, max_age, expected):
    d = modes.decide(
        mode,
        pinned_result_id=pinned,
        pinned_available=available,
        latest_result_id="l" if latest_age is not None else None,
        latest_age=latest_age,
        max_age=max_age,
    )
    assert d.action == expected


def C(rid, size, created, access, pinned=False):
    return retention.Candidate(rid, size, created, access, pinned)


def test_eviction_lru_within_budget_never_pinned():
    entries = [
        C("old", 40, 0, 1),
        C("pinned", 40, 0, 0, True),
        C("new", 40, 0, 5),
        C("mid", 40, 0, 3),
    ]
    chosen = retention.choose_evictions(entries, max_bytes=100, max_age=None, now=10)
    assert chosen == ["old", "mid"]
    assert retention.choose_evictions(entries, max_bytes=10, max_age=None, now=10) == [
        "old",
        "mid",
        "new",
    ]


def test_eviction_by_age_never_pinned():
    entries = [C("a", 1, 0, 100), C("b", 1, 95, 100), C("p", 1, 0, 0, True)]
    assert retention.choose_evictions(entries, max_bytes=None, max_age=10, now=100) == ["a"]


def test_pinned_never_evicted_even_when_the_budget_cannot_be_met():
    entries = [C("a", 10, 0, 0, True), C("b", 10, 1, 1, True), C("c", 10, 0, 2)]
    assert retention.choose_evictions(entries, max_bytes=5, max_age=1, now=100) == ["c"]
    assert retention.choose_evictions(entries, max_bytes=0, max_age=None, now=100) == ["c"]


def test_no_budget_evicts_nothing():
    entries = [C("a", 10**12, 0, 0), C("b", 1, 0, 0)]
    assert retention.choose_evictions(entries, max_bytes=None, max_age=None, now=10**9) == []


def test_merge_pins_keeps_environment():
    model = {
        "type": "notebook",
        "content": {"metadata": {"jupyterhub_civis": {"environment": {"name": "py"}}}},
    }
    assert pins.merge_pins(model, {"k": {"result_id": "r"}})
    civis = model["content"]["metadata"]["jupyterhub_civis"]
    assert civis["environment"] == {"name": "py"}
    assert civis["queries"] == {"k": {"result_id": "r"}}
    assert pins.pins_from_metadata(model["content"]["metadata"]) == {"k": {"result_id": "r"}}
    assert not pins.merge_pins({"type": "file", "content": "x"}, {"k": {"result_id": "r"}})
