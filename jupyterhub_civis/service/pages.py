"""Pages of the service: the Jinja environment, the page base handler, formatting.

A page handler subclasses ``PageHandler`` and calls ``self.render_page(name, **ns)``
with a template under ``templates/``.
"""

from __future__ import annotations

import os
import time

import jinja2

from jupyterhub_civis.service.handlers.base import BaseHandler

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")


def make_jinja() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    env.filters["age"] = age
    env.filters["size"] = size
    return env


class PageHandler(BaseHandler):
    """A browser page: HubOAuth login, HTML errors."""

    def render_page(self, name: str, **ns) -> None:
        xsrf = self.xsrf_token
        self.finish(
            self.settings["jinja"]
            .get_template(name)
            .render(
                prefix=self.settings["service_prefix"],
                xsrf=xsrf.decode() if isinstance(xsrf, bytes) else xsrf,
                now=time.time(),
                **ns,
            )
        )

    def write_error(self, status_code, **kwargs):
        self.set_header("Content-Type", "text/html; charset=utf-8")
        tmpl = self.settings["jinja"].get_template("error.html")
        self.finish(tmpl.render(status=status_code, message=self.error_message(**kwargs)))


def age(ts: float, now: float) -> str:
    s = max(0, int(now - ts))
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= n:
            return f"{s // n} {unit} ago"
    return f"{s} s ago"


def size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)

