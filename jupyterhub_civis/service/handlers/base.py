"""What every handler of the service shares: the caller's identity, security
headers, errors without details, logs that never show a query string."""

from __future__ import annotations

import asyncio
import functools
import json
import logging

from jupyterhub.services.auth import HubOAuthenticated
from tornado import web

from jupyterhub_civis.errors import InvalidInput
from jupyterhub_civis.service import policy
from jupyterhub_civis.service.auth import ANONYMOUS, Caller, identify

log = logging.getLogger("jupyterhub_civis.service")

#: For responses that are data, not pages: nothing may load, frame or submit them.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


class SafeResponses:
    """What every response of the service gets: security headers (errors included —
    tornado calls ``set_default_headers`` again when it clears a response for an
    error), errors as ``{"status", "message"}`` without details, and log lines that
    show the request's path only (a ``?token=`` stays out of the log)."""

    content_security_policy = API_CSP

    def set_default_headers(self):
        self.set_header("Content-Security-Policy", self.content_security_policy)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("Cache-Control", "no-store")

    def log_exception(self, typ, value, tb):
        # tornado's own logs request.uri, and with it any query string
        where = f"{self.request.method} {self.request.path}"
        if isinstance(value, web.HTTPError):
            if value.log_message:
                log.warning("%d %s: %s", value.status_code, where, value.log_message)
        else:
            log.error("uncaught exception in %s", where, exc_info=(typ, value, tb))

    def write_error(self, status_code, **kwargs):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status_code, "message": self.error_message(**kwargs)}))

    def error_message(self, **kwargs) -> str:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            return exc.log_message
        return self._reason


class BaseHandler(SafeResponses, HubOAuthenticated, web.RequestHandler):
    """Identifies the caller once per request (``self.caller``), before the method runs."""

    caller: Caller = ANONYMOUS

    @property
    def hub_auth(self):
        return self.settings["hub_auth"]

    @property
    def store(self):
        return self.settings["store"]

    @property
    def metrics(self):
        return self.settings["metrics"]

    def run(self, fn, *args, **kwargs):
        """Run a blocking call (database, blobs) in the service's I/O pool."""
        call = functools.partial(fn, *args, **kwargs)
        return asyncio.get_running_loop().run_in_executor(self.settings["executor"], call)

    async def prepare(self):
        self.caller = await identify(self.hub_auth, handler=self)
        # tornado's documented alternative to get_current_user: set it in prepare
        self.current_user = self.caller if self.caller.known else None

    def get_current_user(self):
        return None  # only ever reached before prepare (an early error): nobody yet

    def require_user(self) -> str:
        """The caller's own user name; 403 for anyone acting for no user."""
        if self.caller.user is None:
            raise web.HTTPError(403, "a Hub user token with access to this service is required")
        return self.caller.user

    def require_caller(self) -> Caller:
        """A caller that may act on a given result id (its own, or any as results admin)."""
        if not self.caller.known:
            self.require_user()
        return self.caller

    def parse(self, parser, raw):
        """``parser(raw)``; its ``InvalidInput`` becomes a 400 naming the field."""
        try:
            return parser(raw)
        except InvalidInput as e:
            raise web.HTTPError(400, str(e)) from None

    def not_found(self) -> web.HTTPError:
        self.metrics.misses.inc()
        return web.HTTPError(404, policy.NOT_FOUND)

    def on_finish(self):
        self.metrics.requests.labels(
            type(self).__name__, self.request.method, str(self.get_status())
        ).inc()


class APIHandler(BaseHandler):
    def get_login_url(self):
        raise web.HTTPError(403, "a Hub user token with access to this service is required")

    def write_json(self, obj, status=200):
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(obj))


class NotFoundHandler(SafeResponses, web.RequestHandler):
    """Anything no route matches (``default_handler_class``)."""

    def prepare(self):
        raise web.HTTPError(404, "not found")


def log_request(handler) -> None:
    """Access log without query strings (a token passed in a URL is never logged)."""
    status = handler.get_status()
    access = logging.getLogger("tornado.access")
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    ms = 1000.0 * handler.request.request_time()
    access.log(level, "%d %s %s %.1fms", status, handler.request.method, handler.request.path, ms)
