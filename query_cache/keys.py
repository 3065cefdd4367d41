"""Cache keys: which stored results may answer a query (pure; no I/O).

A key is the SHA-256 of a canonical JSON document holding everything that can
change a query's result:

- the *resolved* connection identity (driver, host, port, database, user,
  the URL's query options, and whatever extra identity the connection
  declares, such as a role or a search_path; never the password),
- the warehouse principal (the identity the query runs as),
- the SQL text, exactly as written: only leading/trailing whitespace and one
  trailing ``;`` are removed (:func:`statement_text`),
- the parameters, each with its type,
- session settings that change results (time zone, search path, ...).

There is deliberately no token-level normalisation: whitespace between tokens
can change a query's meaning (``5 % -3`` vs ``5%-3`` in PostgreSQL), so two
texts that differ in any character are two keys. Building a key is one pass
over the text (hashing), whatever its size.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

KEY_VERSION = 2


def statement_text(sql: str) -> str:
    """The SQL as keyed and run: outer whitespace and one trailing ``;`` removed."""
    text = sql.strip()
    if text.endswith(";"):
        text = text[:-1]
    return text


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
    connection_identity: Mapping[str, Any] | str,
    principal: str | None,
    sql: str,
    params: Sequence | Mapping | None = None,
    settings: Mapping[str, Any] | None = None,
) -> str:
    """SHA-256 hex digest identifying the result of one query."""
    head = {
        "v": KEY_VERSION,
        "connection": _jsonable(connection_identity),
        "principal": principal or "",
        "params": _jsonable(params) if params is not None else None,
        "settings": _jsonable(dict(settings or {})),
    }
    digest = hashlib.sha256()
    digest.update(json.dumps(head, sort_keys=True, separators=(",", ":")).encode())
    # the SQL last and raw: no escaping pass over a large text, and the JSON
    # head (which cannot contain a NUL) is separated from it unambiguously
    digest.update(b"\0")
    digest.update(statement_text(sql).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()
