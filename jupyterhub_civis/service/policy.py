"""Pure rules of the result service: identities, access, retention.

The wire format (ids, media types, request models) is ``jupyterhub_civis.protocol``.

No tornado, no SQLAlchemy: every function here is tested directly.
"""

from __future__ import annotations

from collections.abc import Iterable

#: The one message for "not yours" and "does not exist": the two are indistinguishable.
NOT_FOUND = "result not found"

SQL_EXCERPT_CHARS = 4000
#: Pins one result may hold: notebooks (and their copies) that depend on it.
MAX_PINS_PER_RESULT = 256


def owner_of_caller(model: dict | None) -> str | None:
    """The Hub user on whose behalf a request acts, from the Hub's identity model.

    Only Hub *users* own results: a user's API token, an OAuth cookie, or the
    ``$JUPYTERHUB_API_TOKEN`` of one of the user's servers all resolve to the
    user. Services and unidentified callers own nothing (``None``).
    """
    if not model or model.get("kind", "user") != "user":
        return None
    name = model.get("name")
    return name if isinstance(name, str) and name else None


#: The explicit scope that lets a caller act on every user's results. JupyterHub
#: grants it to nobody by default (not even hub admins): an operator must assign
#: it in a role (see ``declare_service``).
ADMIN_SCOPE = "custom:civis:admin"


def is_results_admin(model: dict | None) -> bool:
    """Whether the caller's token carries the explicit results-admin scope (unfiltered)."""
    return bool(model) and ADMIN_SCOPE in (model.get("scopes") or [])


def may_read(result_owner: str | None, caller: str | None, admin: bool = False) -> bool:
    """A caller reads, pins, unpins or deletes only its own results, unless it holds
    the explicit admin scope."""
    if result_owner is None:
        return False
    if admin:
        return True
    return caller is not None and result_owner == caller


def sql_excerpt(sql: str | None) -> str:
    sql = (sql or "").strip()
    if len(sql) <= SQL_EXCERPT_CHARS:
        return sql
    return sql[: SQL_EXCERPT_CHARS - 1] + "…"


def stale_uploads(
    uploads: Iterable[tuple[str, float]], *, now: float, stale_after: float
) -> list[str]:
    """Uploads (id, last heartbeat) whose writer stopped reporting: a crashed replica's leftovers."""
    return [uid for uid, beat in uploads if now - beat > stale_after]
