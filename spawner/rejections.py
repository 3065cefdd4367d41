"""The refusals a spawner raises: HTTP 400s whose message reaches the user unchanged."""

from __future__ import annotations

from html import escape

from tornado import web


class SpawnRejected(web.HTTPError):
    """An HTTP 400 whose message reaches the user unchanged, on the API and the spawn page.

    ``bad_request`` (default) marks the user's input as the cause: it is
    logged as one warning line (see ``refusal.py``). ``bad_request=False``
    is for problems only an operator can fix, logged by JupyterHub as errors.
    """

    def __init__(self, message: str, status_code: int = 400, *, bad_request: bool = True):
        super().__init__(status_code, "%s", message)
        self.jupyterhub_message = message
        self.bad_request = bad_request


class EnvironmentUnavailable(SpawnRejected):
    """The chosen environment could not be made (e.g. a package build failed)."""

    def __init__(self, message: str, detail: str = "", *, bad_request: bool = True):
        super().__init__(message, bad_request=bad_request)
        self.detail = detail
        if detail:
            self.jupyterhub_html_message = f"{escape(message.splitlines()[0])}<pre class='civis-build-log'>{escape(detail)}</pre>"
