"""Named warehouse connections: configuration, identity for cache keys, secrets.

An admin configures connections by name (``QueryCache.connections``); each is
a SQLAlchemy URL, optionally with ``${VAR}`` placeholders filled from the
server's environment when connecting (that is how credentials are supplied:
they never appear in cache keys, metadata, logs or error messages), or a dict
``{"url": ..., "settings": {...}, "principal": ..., "identity": {...}}``.

``identity`` declares what else selects data for this connection but is not in
its URL (for example ``{"role": "analyst", "search_path": "sales"}``); it
enters cache keys next to the *resolved* URL's driver, host, port, database,
user and options (never the password).
"""

from __future__ import annotations

import functools
import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jupyterhub_civis.errors import InvalidInput

_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
# URL options that hold secrets (libpq: password, passfile, sslpassword, sslkey...)
_SECRET_OPTION = re.compile(r"pass|secret|token|key", re.I)


@functools.lru_cache(maxsize=64)
def _parse_url(resolved: str):
    """A resolved URL, parsed once (every miss keys its query with it)."""
    from sqlalchemy.engine import make_url

    return make_url(resolved)


class WarehouseError(Exception):
    """The warehouse rejected the query (its message, credentials scrubbed, and its
    SQLSTATE when the driver reports one)."""

    def __init__(self, message: str, sqlstate: str | None = None):
        super().__init__(message)
        self.sqlstate = sqlstate


def warehouse_message(text: str) -> str:
    """The warehouse's own words from a driver's error text: ADBC wraps PostgreSQL's
    message in its status, the statement it really ran and the SQLSTATE; keep the
    message and its DETAIL/HINT lines (LINE/caret lines point into that wrapped text)."""
    if "ERROR:" not in text:
        return text.strip()
    body = text.split("ERROR:", 1)[1].split("\n\nQuery was:", 1)[0]
    lines = [line.strip() for line in body.strip().splitlines()]
    kept = [line for line in lines if line and not line.startswith("LINE ") and line != "^"]
    return "\n".join(kept) if kept else text.strip()


class WarehouseUnreachable(WarehouseError):
    """The warehouse could not be reached."""


class Cancelled(Exception):
    pass


@dataclass(frozen=True)
class Connection:
    name: str
    url_template: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    principal_override: str | None = None
    extra_identity: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, name: str, value: Any) -> Connection:
        if isinstance(value, str):
            return cls(name, value)
        if isinstance(value, Mapping) and isinstance(value.get("url"), str):
            settings = dict(value.get("settings") or {})
            for k in settings:
                if not _SETTING_NAME.match(k):
                    raise ValueError(f"connection {name!r}: bad setting name {k!r}")
            identity = value.get("identity") or {}
            if not isinstance(identity, Mapping) or not all(
                isinstance(k, str) and isinstance(v, (str, int, float, bool))
                for k, v in identity.items()
            ):
                raise ValueError(f"connection {name!r}: 'identity' must map names to plain values")
            return cls(name, value["url"], settings, value.get("principal"), dict(identity))
        raise ValueError(f"connection {name!r}: expected a URL string or a dict with 'url'")

    # -- identity (safe to hash, log and show)
    def _parsed_template(self):
        from sqlalchemy.engine import make_url

        return make_url(self.url_template)

    @property
    def scheme(self) -> str:
        return self.url_template.split(":", 1)[0].lower()

    @property
    def backend(self) -> str:
        return self.scheme.split("+", 1)[0]

    @property
    def dialect(self) -> str | None:
        return {
            "postgresql": "postgres",
            "postgres": "postgres",
            "duckdb": "duckdb",
            "sqlite": "sqlite",
            "mysql": "mysql",
            "snowflake": "snowflake",
            "bigquery": "bigquery",
        }.get(self.backend)

    def key_identity(self, environ: Mapping[str, str] = os.environ) -> dict:
        """What selects data, from the URL *as this server resolves it*: two servers
        whose ``${DB}`` differs get different identities. Never the password."""
        resolved = self.resolved_url(environ)
        try:
            url = _parse_url(resolved)
        except Exception:
            raise WarehouseUnreachable(f"connection {self.name!r}: not a valid URL") from None
        database = url.database
        if self.backend in ("duckdb", "sqlite") and database and database != ":memory:":
            database = os.path.realpath(database)
        options = {k: v for k, v in sorted(url.query.items()) if not _SECRET_OPTION.search(k)}
        return {
            "driver": self.backend,
            "host": (url.host or "").lower(),
            "port": url.port,
            "database": database or "",
            "user": url.username or "",
            "options": options,
            "extra": dict(self.extra_identity),
        }

    @property
    def identity(self) -> str:
        """The URL template with any password masked (placeholders stay unexpanded):
        what version-1 keys used; shown, never used to match results any more."""
        try:
            return self._parsed_template().render_as_string(hide_password=True)
        except Exception:
            return self.url_template

    def resolved_url(self, environ: Mapping[str, str] = os.environ) -> str:
        try:
            return string.Template(self.url_template).substitute(environ)
        except KeyError as e:
            raise WarehouseUnreachable(
                f"connection {self.name!r} needs the environment variable {e.args[0]} on the server"
            ) from None

    def principal(self, environ: Mapping[str, str] = os.environ) -> str:
        if self.principal_override:
            return self.principal_override
        try:
            return _parse_url(self.resolved_url(environ)).username or ""
        except WarehouseUnreachable:
            return ""
        except Exception:
            return ""

    def secrets(self, environ: Mapping[str, str] = os.environ) -> list[str]:
        out = []
        try:
            from sqlalchemy.engine import make_url

            resolved = self.resolved_url(environ)
            out.append(resolved)
            pw = make_url(resolved).password
            if pw:
                out.append(str(pw))
        except Exception:
            pass
        for var in re.findall(r"\$\{(\w+)\}|\$(\w+)", self.url_template):
            v = environ.get(var[0] or var[1])
            if v and len(v) >= 3:
                out.append(v)
        return sorted(set(out), key=len, reverse=True)

    def scrub(self, message: str) -> str:
        for secret in self.secrets():
            message = message.replace(secret, "***")
        return message

    def check_params(self, params: Any) -> None:
        if params is None:
            return
        if not isinstance(params, (list, dict)):
            raise InvalidInput("params", "must be a JSON list (positional) or object (named)")
        if self.backend in ("postgresql", "postgres") and isinstance(params, dict):
            raise InvalidInput(
                "params",
                f"connection {self.name!r} takes positional parameters ($1, $2, ...): send a list",
            )
