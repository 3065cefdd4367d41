"""Pure policy modules: cache keys, modes, eviction, notebook pins."""

from __future__ import annotations

import pytest

from jupyterhub_civis import retention
from jupyterhub_civis.errors import InvalidInput
from jupyterhub_civis.query_cache import keys, legacy_keys, modes, pins
from jupyterhub_civis.query_cache.warehouse import Connection

IDENTITY = {"driver": "postgresql", "host": "h", "port": 5432, "database": "db", "user": "u"}
BASE = dict(connection_identity=IDENTITY, principal="u")


def key(sql, **kw):
    return keys.cache_key(**{**BASE, "sql": sql, **kw})


# pairs PostgreSQL's lexer tells apart (the first four merged under version-1 keys)
COLLIDING = [
    ("select 5 % -3", "select 5%-3"),
    ("select @ -5", "select @-5"),
    ("select 'a'\n'b'", "select 'a' 'b'"),
    ("select 2 ^ -1", "select 2^-1"),
]


@pytest.mark.parametrize(
    "a, b",
    [
        *COLLIDING,
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
        ("select id,\n  name from t", "select id, name from t"),
        ("select 1;;", "select 1"),
    ],
)
def test_different_queries_never_share_a_key(a, b):
    assert key(a) != key(b)


def test_only_outer_whitespace_and_one_trailing_semicolon_are_dropped():
    assert key("  select 1\n") == key("select 1") == key("select 1;") == key("\tselect 1;  \n")
    assert keys.statement_text(" select 1;; ") == "select 1;"


@pytest.mark.parametrize("a, b", COLLIDING)
def test_colliding_pairs_merged_under_version_1(a, b):
    """The reason for version 2: the old tokenizer-normalised key merges these."""
    v1 = dict(connection_identity="x", principal="u", dialect="postgres")
    assert legacy_keys.cache_key_v1(sql=a, **v1) == legacy_keys.cache_key_v1(sql=b, **v1)


def test_key_of_a_1mb_statement_does_not_tokenize(monkeypatch):
    """O(n): the key is a hash of the text; the tokenizer is never imported for it."""
    import sys

    monkeypatch.setitem(sys.modules, "sqlglot", None)  # importing it would now fail
    sql = "select * from t where id in (" + ", ".join(str(i) for i in range(150_000)) + ")"
    assert len(sql) > 1_000_000
    assert key(sql) != key(sql.replace("149999", "149998"))


@pytest.mark.parametrize(
    "change",
    [
        {"params": [1]},
        {"params": ["1"]},
        {"params": [1.0]},
        {"params": [True]},
        {"principal": "other"},
        {"connection_identity": {**IDENTITY, "database": "other"}},
        {"connection_identity": {**IDENTITY, "extra": {"role": "r"}}},
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


def test_key_identity_is_the_resolved_url_without_password():
    c = Connection.from_config(
        "w",
        {
            "url": "postgresql://analyst:${PW}@DB.example:6432/${DB}?sslmode=require&sslpassword=x",
            "identity": {"role": "reader"},
        },
    )
    one = c.key_identity({"PW": "s3cret", "DB": "sales"})
    assert one == {
        "driver": "postgresql",
        "host": "db.example",
        "port": 6432,
        "database": "sales",
        "user": "analyst",
        "options": {"sslmode": "require"},
        "extra": {"role": "reader"},
    }
    assert "s3cret" not in repr(one)
    # a rotated password is the same data; another database is not
    assert c.key_identity({"PW": "rotated", "DB": "sales"}) == one
    assert c.key_identity({"PW": "s3cret", "DB": "hr"}) != one
    with pytest.raises(ValueError):
        Connection.from_config("w", {"url": "postgresql://h/db", "identity": ["role"]})


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
