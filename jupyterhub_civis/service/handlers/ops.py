"""Unauthenticated operations endpoints (aggregates only) and the OAuth callback.

- ``GET health`` (also ``/health``): 200 when the database and blob store answer, else 503
- ``GET metrics`` (also ``/metrics``): Prometheus text
- ``GET oauth_callback``: completes the browser's HubOAuth login
"""

from __future__ import annotations

import asyncio

import prometheus_client as prom
from jupyterhub.services.auth import HubOAuthCallbackHandler
from tornado import web

from jupyterhub_civis.service.handlers.base import SafeResponses, log


class OpsHandler(SafeResponses, web.RequestHandler):
    async def in_pool(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(
            self.settings["executor"], fn, *args
        )


class HealthHandler(OpsHandler):
    async def get(self):
        try:
            await self.in_pool(self.settings["store"].ping)
        except Exception as e:
            log.warning("health check failed: %s", e)
            self.set_status(503)
            self.finish({"status": "unavailable"})
            return
        self.finish({"status": "ok"})


class MetricsHandler(OpsHandler):
    async def get(self):
        body = await self.in_pool(prom.generate_latest, self.settings["metrics"].registry)
        self.set_header("Content-Type", prom.CONTENT_TYPE_LATEST)
        self.finish(body)


class OAuthCallback(SafeResponses, HubOAuthCallbackHandler):
    @property
    def hub_auth(self):
        return self.settings["hub_auth"]


#: (path under the service prefix, or absolute when it starts with "/"; handler)
ROUTES = [
    ("health", HealthHandler),
    ("/health", HealthHandler),
    ("metrics", MetricsHandler),
    ("/metrics", MetricsHandler),
    ("oauth_callback", OAuthCallback),
]
