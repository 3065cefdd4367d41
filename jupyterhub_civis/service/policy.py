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


# ---------------------------------------------------------------- quotas

def user_budget(groups, default: int, group_budgets: dict[str, int]) -> int | None:
    """A user's byte budget: the largest override of the Hub groups they are in, else
    ``default``. 0 (as default or override) means no limit: ``None``."""
    overrides = [group_budgets[g] for g in groups if g in group_budgets]
    if not overrides:
        return default or None
    if 0 in overrides:
        return None
    return max(overrides)


def upload_refusal(size: int, *, max_result_bytes: int, budget: int | None) -> str | None:
    """Why an upload of ``size`` bytes (declared, or received so far) is refused; None if
    it may go on."""
    if max_result_bytes and size > max_result_bytes:
        return (
            f"a result may be at most {format_bytes(max_result_bytes)} "
            f"(the service's max_result_bytes); this one has {format_bytes(size)}"
        )
    if budget is not None and size > budget:
        return (
            f"this result ({format_bytes(size)}) is larger than your quota of "
            f"{format_bytes(budget)} for stored results"
        )
    return None


def quota_refusal(*, used: int, pinned: int, needed: int, budget: int) -> str:
    """The 413 message when a user's own unpinned results cannot make room."""
    return (
        f"your stored results take {format_bytes(used)} of your quota of "
        f"{format_bytes(budget)} ({format_bytes(pinned)} of it pinned by notebooks), and "
        f"this result needs {format_bytes(needed)} more: delete or unpin results on "
        "the My queries page, or ask for a larger quota"
    )


def format_bytes(n: int) -> str:
    """``1536`` → ``1.5 KiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
