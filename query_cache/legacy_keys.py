"""Version-1 cache keys, kept only to find pins saved by earlier versions (pure).

Version 1 hashed the SQL after dropping the whitespace between its tokens (a
real tokenizer, sqlglot) and named the connection by its unexpanded URL
template. That merged queries PostgreSQL tells apart, so new keys are exact
(:mod:`.keys`). A notebook saved before still names its results by version-1
keys; the manager computes this key only when such a notebook has a pin it
cannot otherwise match, so the tokenizer never runs on the ordinary path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from jupyterhub_civis.query_cache.keys import _jsonable
from jupyterhub_civis.query_cache.pins import pins_from_metadata

_COMMENT_DELIMITERS = set("-/*#")


def _nows(text: str) -> str:
    return "".join(text.split())


def canonical_sql(sql: str, dialect: str | None = None) -> list:
    """Version 1's whitespace-insensitive form of ``sql`` (or its exact text)."""
    try:
        from sqlglot.dialects import Dialect

        tokens = Dialect.get_or_raise(dialect or None).tokenize(sql)
    except Exception:
        return ["text", sql]
    covered = bytearray(len(sql))
    parts = []
    comments_seen: list[str] = []
    for token in tokens:
        raw = sql[token.start : token.end + 1]
        covered[token.start : token.end + 1] = b"\1" * (token.end + 1 - token.start)
        comments = [str(c) for c in (token.comments or [])]
        comments_seen.extend(comments)
        parts.append([raw, comments])
    rest = _nows("".join(ch for i, ch in enumerate(sql) if not covered[i]))
    for comment in comments_seen:
        c = _nows(comment)
        idx = rest.find(c) if c else 0
        if idx < 0 or set(rest[:idx]) - _COMMENT_DELIMITERS:
            return ["text", sql]
        rest = rest[idx + len(c) :]
    if set(rest) - _COMMENT_DELIMITERS:
        return ["text", sql]
    return ["tokens", parts]


def cache_key_v1(
    *,
    connection_identity: str,
    principal: str | None,
    sql: str,
    params: Sequence | Mapping | None = None,
    settings: Mapping[str, Any] | None = None,
    dialect: str | None = None,
) -> str:
    document = {
        "v": 1,
        "connection": connection_identity,
        "principal": principal or "",
        "sql": canonical_sql(sql, dialect),
        "params": _jsonable(params) if params is not None else None,
        "settings": _jsonable(dict(settings or {})),
    }
    blob = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def legacy_pin(notebook_metadata: dict | None, connection, sql: str, params) -> str | None:
    """The result a notebook pinned for this query under a version-1 key, if any.
    Computed only when the notebook holds pins saved before keys had a version
    (so the tokenizer stays off the usual path)."""
    saved = pins_from_metadata(notebook_metadata)
    if not any("key_version" not in pin for pin in saved.values()):
        return None
    try:
        old = cache_key_v1(
            connection_identity=connection.identity,
            principal=connection.principal(),
            sql=sql,
            params=params,
            settings=connection.settings,
            dialect=connection.dialect,
        )
    except TypeError:
        return None
    pin = saved.get(old)
    return pin["result_id"] if pin and "key_version" not in pin else None
