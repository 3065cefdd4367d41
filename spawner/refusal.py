"""What a refused spawn request leaves behind: one warning line, nothing else.

JupyterHub runs the spawner's hooks inside its spawn machinery, so a request
the environment layer refuses as bad input (HTTP 400: an unknown
environment, a malformed requirement, a package that does not exist) is, to
JupyterHub, a failed spawn:

- it logs it as errors, two or three times, with a traceback
  (``Exception applying user_options``, ``Error starting …``,
  ``Failed to spawn single-user server with form``);
- JupyterHub 5.5 and 6.x create a new named server's entry before any hook
  runs, and leave it behind, stopped and empty, where it counts toward
  ``named_server_limit_per_user``: a few bad requests and the user cannot
  create servers any more;
- it counts toward ``consecutive_failure_limit`` (the z2jh chart sets 5),
  after which the hub exits: a few bad requests from anyone stop the hub.

``refused()`` is called by the spawner with the refusal it is about to raise.
It logs one warning line, makes JupyterHub's error records about that
refusal disappear (a filter on the hub's logger), keeps the refusal out of
the failure count, and — when the refused request was the first start of a
named server that never ran and the refusal is the answer to that request —
removes the server's entry once JupyterHub has finished its own clean-up.
A refusal that arrives after the request was answered (a slow package build
answered 202) keeps the entry: the spawn page shows the failure from it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque

#: Seconds a refusal's text keeps JupyterHub's error lines about it quiet.
QUIET_SECONDS = 60.0


class RefusalLogFilter(logging.Filter):
    """Drops error records JupyterHub writes about a request the spawner refused."""

    def __init__(self):
        super().__init__("civis-refusals")
        self._recent: deque[tuple[float, str]] = deque(maxlen=256)

    def remember(self, refusal: BaseException) -> None:
        # the message itself: JupyterHub changes an HTTPError's reason (so its str) later
        self._recent.append((time.monotonic(), _message(refusal)))

    @staticmethod
    def _is_refusal(exc) -> bool:
        return bool(getattr(exc, "bad_request", False))

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        exc = record.exc_info[1] if record.exc_info else None
        # JupyterHub logs some of these lines inside its except block, without exc_info
        if self._is_refusal(exc or sys.exc_info()[1]):
            return False
        message = record.getMessage()
        now = time.monotonic()
        return not any(now - at < QUIET_SECONDS and text in message for at, text in self._recent)


_filter = RefusalLogFilter()


def log_filter(*logs: logging.Logger) -> RefusalLogFilter:
    """The one filter, installed on each of ``logs`` once.

    JupyterHub writes through its own logger (handlers, spawners) and through
    Tornado's ``app_log`` (``User``), which it renames to look the same.
    """
    for log in logs:
        if _filter not in log.filters:
            log.addFilter(_filter)
    return _filter


def refused(spawner, refusal: BaseException) -> BaseException:
    """Account for ``refusal`` (see the module docstring); returns it for ``raise``.

    ``refusal.bad_request`` is true for bad input; false (an operator's
    problem, e.g. a misconfigured environment) keeps JupyterHub's error lines.
    """
    if not getattr(refusal, "bad_request", False):
        return refusal
    from tornado.log import app_log

    spawner.log.warning("Refused to start %s: %s", spawner._log_name, _first_line(refusal))
    handler = getattr(spawner, "handler", None)
    handler_log = getattr(handler, "log", None)
    logs = [spawner.log, app_log] + ([handler_log] if isinstance(handler_log, logging.Logger) else [])
    log_filter(*logs).remember(refusal)
    settings = getattr(handler, "settings", None)
    if isinstance(settings, dict):
        # JupyterHub adds one when this spawn fails: a refusal is not a failed spawn
        settings["failure_count"] = settings.get("failure_count", 0) - 1
    _forget_when_first_start(spawner, handler)
    return refusal


def _message(refusal: BaseException) -> str:
    return getattr(refusal, "jupyterhub_message", None) or str(refusal)


def _first_line(refusal: BaseException) -> str:
    message = _message(refusal)
    return message.splitlines()[0] if message else type(refusal).__name__


def _forget_when_first_start(spawner, handler) -> None:
    orm_spawner = getattr(spawner, "orm_spawner", None)
    future = getattr(spawner, "_spawn_future", None)
    if not spawner.name or orm_spawner is None or future is None:
        return
    if orm_spawner.state is not None:
        return  # it started (or was refused) before: it stays, with its remembered choice

    def forget(_done) -> None:
        if handler is not None and getattr(handler, "_finished", False):
            return  # answered already (202): the spawn page reads the failure from the entry
        user = spawner.user
        if user.spawners.get(spawner.name) is not spawner or orm_spawner.server is not None:
            return  # started again meanwhile
        spawner.log.info("Removing %s: its first start was refused", spawner._log_name)
        user.spawners.pop(spawner.name, None)
        user.db.delete(orm_spawner)
        user.db.commit()

    future.add_done_callback(forget)
