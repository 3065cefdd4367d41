"""Cache keys: which stored results may answer a query (pure; no I/O).

A key is the SHA-256 of a canonical JSON document holding everything that can
change a query's result:

- the connection identity (the admin's URL template with any password masked,
  so rotating a secret does not invalidate the cache and never enters it),
- the warehouse principal (the identity the query runs as),
- the SQL text,
- the parameters,
- session settings that change results (time zone, search path, ...).

SQL is normalised only by a real SQL tokenizer (sqlglot, in the connection's
dialect): the key keeps every token's exact source text and every comment's
text, and drops only the whitespace *between* tokens. Two queries that differ
inside a string literal, a quoted identifier or a comment therefore never share
a key. If the tokenizer fails, or cannot account for every character, the
exact text is used instead: a missed cache hit is acceptable, a wrong one is not.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

KEY_VERSION = 1
_COMMENT_DELIMITERS = set("-/*#")


def _nows(text: str) -> str:
    return "".join(text.split())


def canonical_sql(sql: str, dialect: str | None = None) -> list:
    """A whitespace-insensitive, otherwise exact, representation of ``sql``.

    Returns ``["tokens", [[raw, [comments...]], ...]]`` or ``["text", sql]`` when
    the tokenizer cannot be trusted for this text.
    """
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
        for i in range(token.start, token.end + 1):
            covered[i] = 1
        comments = [str(c) for c in (token.comments or [])]
        comments_seen.extend(comments)
        parts.append([raw, comments])
    # Safety net: every non-whitespace character outside the tokens must be
    # comment text or comment delimiters, else fall back to the exact text.
    rest = _nows("".join(ch for i, ch in enumerate(sql) if not covered[i]))
    for comment in comments_seen:
        c = _nows(comment)
        idx = rest.find(c) if c else 0
        if idx < 0:
            return ["text", sql]
        if set(rest[:idx]) - _COMMENT_DELIMITERS:
            return ["text", sql]
        rest = rest[idx + len(c) :]
    if set(rest) - _COMMENT_DELIMITERS:
        return ["text", sql]
    return ["tokens", parts]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        # keep the type: 1, 1.0, "1" and True are different parameters
        return [type(value).__name__, value]
    raise TypeError(f"parameter of type {type(value).__name__} is not JSON-serialisable")


def cache_key(
    *,
    connection_identity: str,
    principal: str | None,
    sql: str,
    params: Sequence | Mapping | None = None,
    settings: Mapping[str, Any] | None = None,
    dialect: str | None = None,
) -> str:
    """SHA-256 hex digest identifying the result of one query."""
    document = {
        "v": KEY_VERSION,
        "connection": connection_identity,
        "principal": principal or "",
        "sql": canonical_sql(sql, dialect),
        "params": _jsonable(params) if params is not None else None,
        "settings": _jsonable(dict(settings or {})),
    }
    blob = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
