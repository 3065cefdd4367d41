"""What the report runner asks of the Hub and of a user's server, over HTTP.

With the service's own token (``$JUPYTERHUB_API_TOKEN``) and the role
``hubconfig.declare_reports`` gives it: start and stop a user's named server
(``servers``), read whether it is ready (``servers`` includes ``read:servers``),
and call that server's ``api/civis/execute`` through the proxy
(``access:servers``) — where the server lets the civis service in
(``ExecutionApp.allowed_services``).
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from jupyterhub_civis.protocol import EXECUTE_PATH


class HubError(Exception):
    """The Hub or the server refused or failed; the message says which and why."""


class HubClient:
    def __init__(self, api_url: str, proxy_url: str, token: str, request_timeout: float = 120):
        self.api_url = api_url.rstrip("/")
        self.proxy_url = proxy_url.rstrip("/")
        self.token = token
        self.request_timeout = request_timeout
        self.http = AsyncHTTPClient(max_clients=128)

    async def _call(self, method: str, url: str, body=None, timeout=None, ok=(200, 201, 202, 204)):
        request = HTTPRequest(
            url, method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            body=None if body is None else json.dumps(body),
            allow_nonstandard_methods=True,
            request_timeout=timeout or self.request_timeout,
            follow_redirects=False,
        )
        try:
            response = await self.http.fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as e:
            raise HubError(f"{method} {url.split('?')[0]}: {e}") from None
        if response.code not in ok:
            text = (response.body or b"")[:500].decode(errors="replace")
            raise HubError(f"{method} {url.split('?')[0]}: HTTP {response.code} {text}")
        return json.loads(response.body) if response.body else None

    def _server(self, user: str, server: str) -> str:
        return f"{self.api_url}/users/{quote(user, safe='')}/servers/{quote(server, safe='')}"

    async def server_model(self, user: str, server: str) -> dict | None:
        model = await self._call("GET", f"{self.api_url}/users/{quote(user, safe='')}")
        return (model.get("servers") or {}).get(server)

    async def start_server(self, user: str, server: str, options: dict, timeout: float) -> dict:
        """Start (or find running) ``user``'s named ``server`` with ``options``; its model once
        ready. A server still stopping (the previous run's) is waited for, then started."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay, posted = 0.05, False
        while True:
            model = await self.server_model(user, server)
            pending = (model or {}).get("pending")
            if model and model.get("ready") and not pending:
                return model
            if not pending:
                if posted:
                    raise HubError(f"the report server {user}/{server} did not start (see the hub's log)")
                try:
                    await self._call("POST", self._server(user, server), body=options or {})
                except HubError:
                    again = await self.server_model(user, server)
                    if not (again and (again.get("ready") or again.get("pending"))):
                        raise  # refused (e.g. an environment the catalog no longer has)
                posted = True
                continue
            if loop.time() > deadline:
                raise HubError(f"the report server {user}/{server} took longer than {timeout:g} s to start")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    async def stop_server(self, user: str, server: str) -> None:
        """Stop and forget the named server (it does not count against the user's limit)."""
        await self._call("DELETE", self._server(user, server), body={"remove": True}, ok=(202, 204, 404))

    def _execute_url(self, model: dict, path: str = "") -> str:
        return self.proxy_url + model["url"].rstrip("/") + "/" + EXECUTE_PATH + path

    async def execute(self, model: dict, body: dict) -> dict:
        return await self._call("POST", self._execute_url(model), body=body, ok=(202,))

    async def execution(self, model: dict, run_id: str, version: int, wait: float) -> dict:
        url = self._execute_url(model, f"/{run_id}?wait={wait:g}&version={version}")
        return await self._call("GET", url, timeout=wait + self.request_timeout)

    async def cancel(self, model: dict, run_id: str) -> dict:
        return await self._call("POST", self._execute_url(model, f"/{run_id}/cancel"))

    async def executed_notebook(self, model: dict, run_id: str) -> dict:
        return await self._call("GET", self._execute_url(model, f"/{run_id}/notebook"))
