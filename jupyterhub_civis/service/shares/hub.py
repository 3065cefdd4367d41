"""The Hub API calls sharing makes — always with the *viewer's own* delegated OAuth
token (the service's browser login), never with a privileged service token.

Scopes they need (granted through ``oauth_client_allowed_scopes`` by
``declare_service``; docs/sharing.md): ``servers!user`` to read, start and reuse
the viewer's own named servers; for live shares ``shares!user`` (JupyterHub ≥ 5)
to issue and revoke share codes of the owner's own servers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

#: named servers that hold copies of shared notebooks: ``copy-<hash of the environment>``
COPY_PREFIX = "copy-"


def copy_server_name(options: dict | None) -> str:
    """One named server per environment: copies in the same environment share it."""
    digest = hashlib.sha256(json.dumps(options or {}, sort_keys=True).encode()).hexdigest()
    return COPY_PREFIX + digest[:10]


def copy_options(environment: dict) -> dict | None:
    """``user_options`` that start a server in a snapshot's recorded environment
    (``None``: the notebook recorded none; the hub's default environment), pinned to
    the image digest it recorded on a container backend (the spawner allows only a
    digest of an image the operator offers: ``spawner/pinning.py``)."""
    name = environment.get("name")
    if not isinstance(name, str) or not name:
        return None
    options: dict = {"environment": name}
    packages = environment.get("packages")
    if isinstance(packages, list) and packages and all(isinstance(p, str) for p in packages):
        options["packages"] = packages
    digest = environment.get("image_digest")
    if isinstance(digest, str) and "@sha256:" in digest:
        options["image_digest"] = digest
    return options


@dataclass(frozen=True)
class Started:
    ok: bool
    status: int
    message: str = ""


class HubAPI:
    def __init__(self, api_url: str, token: str):
        self.api_url = api_url.rstrip("/")
        self.token = token

    async def _call(self, method: str, path: str, body: dict | None = None):
        return await AsyncHTTPClient().fetch(
            self.api_url + path,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            body=None if method in ("GET", "DELETE") else json.dumps(body or {}),
            request_timeout=60,
        )

    async def server(self, user: str, name: str) -> dict | None:
        r = await self._call("GET", f"/users/{quote(user, safe='')}")
        return (json.loads(r.body).get("servers") or {}).get(name)

    async def start(self, user: str, name: str, options: dict | None) -> Started:
        """Start (or find starting/running) the named server; a refusal's message."""
        path = f"/users/{quote(user, safe='')}/servers/{quote(name, safe='')}"
        try:
            r = await self._call("POST", path, options)
        except HTTPClientError as e:
            message = ""
            if e.response is not None:
                try:
                    message = json.loads(e.response.body).get("message", "")
                except ValueError:
                    pass
            return Started(False, e.code, message or str(e))
        return Started(True, r.code)


    async def share_code(self, user: str, server: str, expires_in: int) -> dict:
        """A new share code of ``user``'s ``server`` (its model, with the code, once)."""
        path = f"/share-codes/{quote(user, safe='')}/{quote(server, safe='')}"
        r = await self._call("POST", path, {"expires_in": expires_in})
        return json.loads(r.body)

    async def revoke_live(self, user: str, server: str, code_id: str) -> None:
        """Delete the share code and every share of the server it granted (pair work
        ends for everyone who accepted it). Already gone is fine."""
        where = f"{quote(user, safe='')}/{quote(server, safe='')}"
        for method, path in (
            ("DELETE", f"/share-codes/{where}?id={quote(code_id, safe='')}"),
            ("DELETE", f"/shares/{where}"),
        ):
            try:
                await self._call(method, path)
            except HTTPClientError as e:
                if e.code != 404:
                    raise


def hub_error(e: Exception) -> tuple[int, str]:
    """A Hub API failure as (status, message) to pass on to the caller."""
    if isinstance(e, HTTPClientError) and e.response is not None:
        try:
            message = json.loads(e.response.body).get("message", "")
        except ValueError:
            message = ""
        if e.code in (400, 403, 404):
            return e.code, message or str(e)
    return 502, f"the hub did not answer as expected: {e}"
