"""Pages of the service, rendered inside JupyterHub's own page template.

A page handler subclasses ``PageHandler`` and calls ``self.render_page(name, **ns)``
with a template under ``templates/`` that extends ``civis_page.html``, which
extends the hub's ``page.html`` (found in the installed JupyterHub's data files,
as ``templates/page.html``): the hub's navigation bar, user menu, dark-mode
toggle, stylesheet and scripts — loaded from the hub's own ``/hub/static/`` —
around the page's ``content`` block. The Services menu lists the service's
pages (``MENU`` of each resource module in ``handlers/``).

Every page is sent with a Content-Security-Policy that allows scripts from the
hub's origin plus the hash of each inline script the hub's template renders;
nothing else runs, and no other site may frame the page.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field

import jinja2
from tornado import web

from jupyterhub_civis.service import policy
from jupyterhub_civis.service.handlers.base import BaseHandler, SafeResponses

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = os.path.join(HERE, "templates")
STATIC = os.path.join(HERE, "static")

PAGE_CSP = (
    "default-src 'self'; script-src 'self' {script_hashes}; style-src 'self'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.I)


def jupyterhub_templates() -> str:
    """The installed JupyterHub's own templates folder."""
    from jupyterhub._data import DATA_FILES_PATH

    return os.path.join(DATA_FILES_PATH, "templates")


def make_jinja() -> jinja2.Environment:
    hub = jupyterhub_templates()
    loader = jinja2.ChoiceLoader(
        [
            jinja2.FileSystemLoader(TEMPLATES),
            jinja2.PrefixLoader({"templates": jinja2.FileSystemLoader(hub)}),
        ]
    )
    # auto_reload off: templates are package data, never edited under a running service
    env = jinja2.Environment(loader=loader, autoescape=True, auto_reload=False)
    env.filters["age"] = age
    env.filters["size"] = policy.format_bytes
    env.filters["count"] = count
    return env


@dataclass(frozen=True)
class MenuLink:
    """An entry of the page's Services menu (what the hub's template reads of a service)."""

    name: str
    href: str
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PageUser:
    """What the hub's template reads of ``user``."""

    name: str

    @property
    def json_escaped_name(self) -> str:
        # placed inside an inline <script> by the hub's template: no "<", ">" or "&" may
        # survive, or a name could end the script (and its hash would then be allowed)
        return (
            json.dumps(self.name)[1:-1]
            .replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
        )


def script_hashes(html: str) -> str:
    """CSP sources allowing exactly the inline scripts of ``html``."""
    digests = {
        base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        for body in _INLINE_SCRIPT.findall(html)
    }
    return " ".join(f"'sha256-{d}'" for d in sorted(digests))


class PageHandler(BaseHandler):
    """A browser page: HubOAuth login, the hub's page template, HTML errors."""

    def page_namespace(self) -> dict:
        hub_prefix = self.hub_auth.hub_prefix  # e.g. /hub/
        user = PageUser(self.caller.user) if self.caller.user else None
        xsrf = self.xsrf_token
        return {
            # what JupyterHub's page.html expects
            "base_url": hub_prefix,
            "prefix": hub_prefix[: -len("hub/")] if hub_prefix.endswith("hub/") else "/",
            "user": user,
            "static_url": lambda path, include_version=True: f"{hub_prefix}static/{path}",
            "login_url": self.hub_auth.login_url,
            "logout_url": f"{hub_prefix}logout",
            "services": self.settings["menu"],
            "parsed_scopes": set((self.caller.model or {}).get("scopes") or []),
            "admin_access": False,
            "no_spawner_check": True,
            "xsrf_token": xsrf.decode() if isinstance(xsrf, bytes) else xsrf,
            # the service's own
            "civis_static": self.static_url,
            "service_prefix": self.settings["service_prefix"],
            "now": time.time(),
        }

    def render_page(self, name: str, **ns) -> None:
        template = self.settings["jinja"].get_template(name)
        html = template.render(**{**self.page_namespace(), **ns})
        self.set_header(
            "Content-Security-Policy", PAGE_CSP.format(script_hashes=script_hashes(html))
        )
        self.finish(html)

    def write_error(self, status_code, **kwargs):
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.render_page("error.html", status=status_code, message=self.error_message(**kwargs))


class StaticFiles(SafeResponses, web.StaticFileHandler):
    """The pages' own stylesheet and script, with the service's headers."""


def age(ts: float, now: float) -> str:
    s = max(0, int(now - ts))
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= n:
            return f"{s // n} {unit} ago"
    return f"{s} s ago"


def count(n: int) -> str:
    """``1234567`` → ``1,234,567``."""
    return f"{n:,}"
