"""The "civis" JupyterHub managed service: tornado app, thin handlers, traitlets config.

Run by JupyterHub as a managed service (``jupyterhub-civis service``), it reads
its identity from the environment JupyterHub gives it (``JUPYTERHUB_API_TOKEN``,
``JUPYTERHUB_SERVICE_URL``, ``JUPYTERHUB_SERVICE_PREFIX``, OAuth client id).

HTTP API (under the service prefix, e.g. ``/services/civis/``), every call
authenticated with a Hub token (``Authorization: token …``) or the service's
OAuth cookie; results belong to the Hub user the token identifies:

- ``POST   api/results``                 body: an Arrow IPC stream or file (streamed);
  header ``X-Civis-Result: {"key", "sql", "connection", "rows"[, "pins"]}`` → 201 + JSON
- ``GET    api/results[?key=&limit=]``   the caller's results, newest first
- ``GET    api/results/<id>``            the body as stored (streamed; Content-Type
  ``application/vnd.apache.arrow.stream`` or ``….file``)
- ``GET    api/results/<id>/info``       its metadata (JSON)
- ``DELETE api/results/<id>``            delete (409 while pinned)
- ``PUT    api/results/<id>/pins``       body ``{"ref": notebook}``; ``DELETE …/pins?ref=``
- ``GET    health``, ``GET metrics``     unauthenticated; aggregates only
- ``GET    ``                            the "My queries" page (HubOAuth)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
import os
import signal
import time
from urllib.parse import urlparse

import jinja2
import prometheus_client as prom
from jupyterhub.services.auth import (
    HubOAuth,
    HubOAuthCallbackHandler,
    HubOAuthenticated,
    UserNotAllowed,
)
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop, PeriodicCallback
from traitlets import Dict, Float, Int, Unicode, default
from traitlets.config import Application

from jupyterhub_civis.service import policy
from jupyterhub_civis.service.handoff import HandoffServer
from jupyterhub_civis.service.store import DurableStore, NotFound, Pinned, UploadLost

CHUNK = 1 << 20
HERE = os.path.dirname(os.path.abspath(__file__))


class Metrics:
    """Per-app Prometheus registry; store size is read from the shared database at scrape time."""

    def __init__(self, store: DurableStore):
        self.registry = prom.CollectorRegistry()
        self.requests = prom.Counter(
            "civis_service_requests",
            "HTTP requests",
            ["handler", "method", "code"],
            registry=self.registry,
        )
        self.hits = prom.Counter(
            "civis_service_result_hits", "Results served", registry=self.registry
        )
        self.misses = prom.Counter(
            "civis_service_result_misses", "Result reads answered 404", registry=self.registry
        )
        self.evictions = prom.Counter(
            "civis_service_evictions",
            "Results evicted by the retention budget",
            registry=self.registry,
        )
        self.uploads = prom.Counter(
            "civis_service_uploads", "Uploads by outcome", ["outcome"], registry=self.registry
        )
        self.registry.register(_StoreCollector(store))


class _StoreCollector:
    def __init__(self, store):
        self.store = store

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        stats = self.store.stats()
        yield GaugeMetricFamily(
            "civis_service_store_bytes", "Bytes of committed results", value=stats["bytes"]
        )
        yield GaugeMetricFamily(
            "civis_service_store_results", "Committed results", value=stats["results"]
        )
        yield GaugeMetricFamily(
            "civis_service_store_pinned_results", "Results with a pin", value=stats["pinned"]
        )
        yield GaugeMetricFamily(
            "civis_service_uploads_in_progress", "Uploads not committed yet", value=stats["uploads"]
        )


# ---------------------------------------------------------------- handlers


class BaseHandler(HubOAuthenticated, web.RequestHandler):
    """Identifies the caller once (async), serialises errors without details."""

    owner: str | None = None

    @property
    def hub_auth(self):
        return self.settings["hub_auth"]

    @property
    def store(self) -> DurableStore:
        return self.settings["store"]

    @property
    def metrics(self) -> Metrics:
        return self.settings["metrics"]

    def run(self, fn, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self.settings["executor"], lambda: fn(*args, **kwargs))

    async def prepare(self):
        model = await self.hub_auth.get_user(self, sync=False)
        allowed = None
        if model:
            try:
                allowed = self.check_hub_user(model)
            except UserNotAllowed:
                allowed = None
        self._hub_auth_user_cache = allowed
        self.owner = policy.owner_of_caller(allowed)
        self.admin = policy.is_results_admin(allowed)

    def require_owner(self) -> str:
        if self.owner is None:
            raise web.HTTPError(403, "a Hub user token with access to this service is required")
        return self.owner

    def require_caller(self) -> tuple[str | None, bool]:
        """(owner, admin) of a caller that may act on a given result id."""
        if self.owner is None and not self.admin:
            self.require_owner()
        return self.owner, self.admin

    def not_found(self):
        self.metrics.misses.inc()
        return web.HTTPError(404, policy.NOT_FOUND)

    def on_finish(self):
        self.metrics.requests.labels(
            type(self).__name__, self.request.method, str(self.get_status())
        ).inc()

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else None
        message = message or self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status_code, "message": message}))


class APIHandler(BaseHandler):
    def get_login_url(self):
        raise web.HTTPError(403, "a Hub user token with access to this service is required")

    def write_json(self, obj, status=200):
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(obj))

    def result_meta(self) -> dict:
        raw = self.request.headers.get("X-Civis-Result", "{}")
        try:
            meta = json.loads(raw)
            if not isinstance(meta, dict):
                raise ValueError
            rows = int(meta.get("rows", 0))
            fields = {k: meta.get(k, "") for k in ("key", "sql", "connection")}
            pins = meta.get("pins", [])
            if not all(isinstance(v, str) for v in fields.values()):
                raise ValueError
            if len(fields["key"]) > 128 or len(fields["connection"]) > 255 or rows < 0:
                raise ValueError
            if not isinstance(pins, list) or len(pins) > policy.MAX_PINS_PER_UPLOAD:
                raise ValueError
            if not all(policy.valid_pin_ref(ref) for ref in pins):
                raise ValueError
        except (ValueError, TypeError):
            raise web.HTTPError(
                400,
                'X-Civis-Result must be JSON {"key": str, "sql": str, "connection": str, '
                f'"rows": int, "pins": [notebook refs, at most {policy.MAX_PINS_PER_UPLOAD}]}}',
            ) from None
        return {**fields, "rows": rows, "pins": pins}


@web.stream_request_body
class ResultsHandler(APIHandler):
    upload = None
    committed = False
    _pending = None

    async def prepare(self):
        await super().prepare()
        if self.request.method != "POST":
            return
        owner = self.require_owner()
        self._meta = self.result_meta()
        self.request.connection.set_max_body_size(self.settings["max_result_bytes"])
        self.upload = await self.run(self.store.begin_upload, owner)

    async def data_received(self, chunk):
        if self.upload is None:
            return
        self._pending = self.run(self.upload.write, chunk)
        await self._pending

    async def post(self):
        upload = self.upload
        if policy.arrow_media_type(upload.head, upload.tail, upload.size) is None:
            raise web.HTTPError(400, "the body is not a complete Arrow IPC stream or file")
        try:
            info = await self.run(self.store.commit_upload, upload, **self._meta)
        except UploadLost:
            raise web.HTTPError(409, "upload took too long and was discarded; retry") from None
        self.committed = True
        self.metrics.uploads.labels("committed").inc()
        self.settings["after_commit"]()
        self.write_json(info.to_json(), 201)

    async def get(self):
        owner = self.get_argument("user", None)
        if owner is None:
            owner = self.require_owner()
        elif not self.admin and owner != self.owner:
            raise web.HTTPError(403, f"listing another user's results needs {policy.ADMIN_SCOPE}")
        key = self.get_argument("key", None)
        try:
            limit = int(self.get_argument("limit", "0")) or None
        except ValueError:
            raise web.HTTPError(400, "limit must be an integer") from None
        infos = await self.run(self.store.list, owner, key, limit)
        self.write_json({"results": [i.to_json() for i in infos]})

    def _abort(self):
        upload, self.upload = self.upload, None
        if upload is None or self.committed:
            return
        self.metrics.uploads.labels("aborted").inc()
        pending = self._pending

        async def abort():
            if pending is not None:
                try:
                    await pending
                except Exception:
                    pass
            await self.run(upload.abort)

        asyncio.ensure_future(abort())

    def write_error(self, status_code, **kwargs):
        if self.request.method == "POST":
            # the body may be unread: this connection cannot carry another request
            self.set_header("Connection", "close")
        super().write_error(status_code, **kwargs)

    def on_connection_close(self):
        self._abort()
        super().on_connection_close()

    def on_finish(self):
        self._abort()
        super().on_finish()


class ResultHandler(APIHandler):
    async def _info(self, result_id, touch=True):
        owner, admin = self.require_caller()
        try:
            return await self.run(self.store.get, owner, result_id, touch=touch, admin=admin)
        except NotFound:
            raise self.not_found() from None

    async def get(self, result_id):
        info = await self._info(result_id)
        try:
            f = await self.run(self.store.open_blob, info.id)
        except FileNotFoundError:  # evicted/deleted by another replica just now
            raise self.not_found() from None
        self.metrics.hits.inc()
        try:
            chunk = await self.run(f.read, CHUNK)
            self.set_header("Content-Type", policy.stored_media_type(chunk))
            self.set_header("Content-Length", str(info.size))
            self.set_header("X-Civis-Result", json.dumps(info.to_json()))
            while chunk:
                self.write(chunk)
                await self.flush()
                chunk = await self.run(f.read, CHUNK)
        finally:
            await self.run(f.close)

    async def delete(self, result_id):
        owner, admin = self.require_caller()
        try:
            await self.run(self.store.delete, owner, result_id, admin=admin)
        except NotFound:
            raise self.not_found() from None
        except Pinned:
            raise web.HTTPError(409, "the result is pinned by a notebook; unpin it first") from None
        self.set_status(204)
        self.finish()


class InfoHandler(ResultHandler):
    async def get(self, result_id):
        info = await self._info(result_id, touch=False)
        self.write_json(info.to_json())


class PinsHandler(APIHandler):
    def _ref(self, ref):
        if not policy.valid_pin_ref(ref):
            raise web.HTTPError(400, "ref must be a non-empty notebook reference")
        return ref

    async def put(self, result_id):
        owner, admin = self.require_caller()
        try:
            ref = json.loads(self.request.body or b"{}").get("ref")
        except (ValueError, AttributeError):
            ref = None
        try:
            info = await self.run(self.store.pin, owner, result_id, self._ref(ref), admin)
        except NotFound:
            raise self.not_found() from None
        self.write_json(info.to_json())

    async def delete(self, result_id):
        owner, admin = self.require_caller()
        ref = self._ref(self.get_argument("ref", None))
        try:
            info = await self.run(self.store.unpin, owner, result_id, ref, admin)
        except NotFound:
            raise self.not_found() from None
        self.write_json(info.to_json())


class NotFoundHandler(APIHandler):
    async def prepare(self):
        raise web.HTTPError(404, "not found")


class HealthHandler(web.RequestHandler):
    async def get(self):
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.settings["executor"], self.settings["store"].ping)
        except Exception as e:
            logging.getLogger("jupyterhub_civis.service").warning("health check failed: %s", e)
            self.set_status(503)
            self.finish({"status": "unavailable"})
            return
        self.finish({"status": "ok"})


class MetricsHandler(web.RequestHandler):
    async def get(self):
        loop = asyncio.get_running_loop()
        body = await loop.run_in_executor(
            self.settings["executor"], prom.generate_latest, self.settings["metrics"].registry
        )
        self.set_header("Content-Type", prom.CONTENT_TYPE_LATEST)
        self.finish(body)


class QueriesPage(BaseHandler):
    """The "My queries" page: the caller's results, delete for unpinned ones."""

    @web.authenticated
    async def get(self):
        owner = self.require_owner()
        infos = await self.run(self.store.list, owner)
        tmpl = self.settings["jinja"].get_template("queries.html")
        self.finish(
            tmpl.render(
                user=owner,
                results=infos,
                now=time.time(),
                prefix=self.settings["service_prefix"],
                xsrf=self.xsrf_token.decode()
                if isinstance(self.xsrf_token, bytes)
                else self.xsrf_token,
                message=self.get_argument("message", ""),
            )
        )

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else None
        self.set_header("Content-Type", "text/html; charset=utf-8")
        tmpl = self.settings["jinja"].get_template("error.html")
        self.finish(tmpl.render(status=status_code, message=message or self._reason))


class DeletePage(QueriesPage):
    @web.authenticated
    async def post(self, result_id):
        owner = self.require_owner()
        try:
            await self.run(self.store.delete, owner, result_id)
        except NotFound:
            raise self.not_found() from None
        except Pinned:
            raise web.HTTPError(409, "This result is pinned by a notebook.") from None
        self.redirect(self.settings["service_prefix"])


class OAuthCallback(HubOAuthCallbackHandler):
    @property
    def hub_auth(self):
        return self.settings["hub_auth"]


# ---------------------------------------------------------------- application


def _service_url() -> urlparse:
    return urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101"))


class CivisService(Application):
    name = "jupyterhub-civis-service"
    description = "The civis JupyterHub managed service: durable, per-user query result store."

    aliases = {
        "config": "CivisService.config_file",
        "f": "CivisService.config_file",
        "data-dir": "CivisService.data_dir",
        "db-url": "CivisService.db_url",
        "blob-url": "CivisService.blob_url",
        "port": "CivisService.port",
        "ip": "CivisService.ip",
        "log-level": "Application.log_level",
    }

    config_file = Unicode(
        "",
        help="A Python config file (``c.CivisService.… = …``) loaded before the command line.",
    ).tag(config=True)

    data_dir = Unicode(
        help="""Folder for the default SQLite database and local blobs.

        Default: $CIVIS_SERVICE_DATA_DIR, else ``civis-service`` in the working folder
        (JupyterHub starts managed services in its own working folder).""",
    ).tag(config=True)

    @default("data_dir")
    def _default_data_dir(self):
        return os.path.abspath(os.environ.get("CIVIS_SERVICE_DATA_DIR", "civis-service"))

    db_url = Unicode(
        help="""SQLAlchemy URL of the metadata database.

        Default: SQLite in ``data_dir``. For several replicas use PostgreSQL, e.g.
        ``postgresql+psycopg://civis@db/civis``. The schema is created and upgraded
        with Alembic at start-up; existing data is kept.""",
    ).tag(config=True)

    @default("db_url")
    def _default_db_url(self):
        return os.environ.get("CIVIS_SERVICE_DB_URL") or "sqlite:///" + os.path.join(
            self.data_dir, "civis-service.sqlite"
        )

    blob_url = Unicode(
        help="""fsspec URL of the folder holding result blobs (Arrow IPC streams or files).

        Default: ``blobs`` in ``data_dir``. Any fsspec URL works, e.g.
        ``s3://bucket/civis-results`` (needs ``s3fs``; credentials from the usual
        AWS environment/instance profile). Replicas must share it.""",
    ).tag(config=True)

    @default("blob_url")
    def _default_blob_url(self):
        return os.environ.get("CIVIS_SERVICE_BLOB_URL") or os.path.join(self.data_dir, "blobs")

    blob_storage_options = Dict(
        help="""Extra fsspec storage options for ``blob_url``, e.g.
        ``{"endpoint_url": "http://minio:9000"}`` for an S3-compatible server.
        Default: $CIVIS_SERVICE_BLOB_OPTIONS (JSON) or none.""",
    ).tag(config=True)

    @default("blob_storage_options")
    def _default_blob_options(self):
        raw = os.environ.get("CIVIS_SERVICE_BLOB_OPTIONS")
        return json.loads(raw) if raw else {}

    max_total_bytes = Int(
        0,
        help="""Retention size budget in bytes over all users' results; least recently
        used unpinned results are evicted beyond it. 0: no size limit.""",
    ).tag(config=True)

    max_age = Float(
        0,
        help="Retention age budget in seconds: unpinned results older than this are evicted. 0: no age limit.",
    ).tag(config=True)

    max_result_bytes = Int(
        8 << 30, help="Largest accepted upload, in bytes (default 8 GiB); larger is answered 413."
    ).tag(config=True)

    upload_stale_after = Float(
        300,
        help="""Seconds without progress after which an upload is considered dead (its
        writer crashed) and its partial blob is deleted by cleanup. Uploads send a
        heartbeat every ``upload_stale_after / 4`` seconds while data arrives.""",
    ).tag(config=True)

    cleanup_interval = Float(
        60,
        help="Seconds between retention/orphan cleanup rounds (each replica runs them; they are idempotent).",
    ).tag(config=True)

    cookie_secret = Unicode(
        help="""Secret signing the browser session cookie; replicas must share it.

        Default: $JUPYTERHUB_CIVIS_COOKIE_SECRET, else derived from the service's
        $JUPYTERHUB_API_TOKEN (which every replica of the service has).""",
    ).tag(config=True)

    @default("cookie_secret")
    def _default_cookie_secret(self):
        import hashlib

        explicit = os.environ.get("JUPYTERHUB_CIVIS_COOKIE_SECRET")
        if explicit:
            return explicit
        token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
        if not token:
            return os.urandom(32).hex()
        return hashlib.sha256(b"civis-service-cookie\0" + token.encode()).hexdigest()

    threads = Int(8, help="Worker threads for database and blob I/O.").tag(config=True)

    ip = Unicode(help="Listen address. Default: the host of $JUPYTERHUB_SERVICE_URL.").tag(
        config=True
    )

    @default("ip")
    def _default_ip(self):
        return _service_url().hostname or "127.0.0.1"

    port = Int(help="Listen port. Default: the port of $JUPYTERHUB_SERVICE_URL.").tag(config=True)

    @default("port")
    def _default_port(self):
        return _service_url().port or 10101

    service_prefix = Unicode(
        help="URL prefix the proxy routes to this service. Default: $JUPYTERHUB_SERVICE_PREFIX."
    ).tag(config=True)

    @default("service_prefix")
    def _default_prefix(self):
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/civis/")
        return prefix if prefix.endswith("/") else prefix + "/"

    def initialize(self, argv=None):
        self.parse_command_line(argv)
        if self.config_file:
            self.load_config_file(self.config_file)
            self.parse_command_line(argv)  # the command line wins over the file
        os.makedirs(self.data_dir, exist_ok=True)
        self.store = DurableStore(
            self.db_url,
            self.blob_url,
            storage_options=self.blob_storage_options,
            max_total_bytes=self.max_total_bytes,
            max_age=self.max_age,
            upload_stale_after=self.upload_stale_after,
            heartbeat_interval=max(self.upload_stale_after / 4, 0.05),
        )
        self.executor = concurrent.futures.ThreadPoolExecutor(
            self.threads, thread_name_prefix="civis-io"
        )
        self.metrics = Metrics(self.store)
        self.hub_auth = HubOAuth(parent=self, api_url=os.environ.get("JUPYTERHUB_API_URL", ""))

    handoff_socket = Unicode(
        help="""Path of a Unix socket where servers on this machine receive a result as an
        open file instead of its bytes over HTTP (see ``handoff.py``): a cold hot-tier
        hit then costs a hard link or an in-kernel copy instead of a download.

        Only for blobs on a local disk; the socket path must be under 100 bytes.
        Access is decided by the Hub token in each request, as on the HTTP API.
        Default: $CIVIS_SERVICE_HANDOFF_SOCKET (``declare_service(handoff_socket=…)``
        sets it for the service and every server); empty: off.""",
    ).tag(config=True)

    @default("handoff_socket")
    def _default_handoff_socket(self):
        return os.environ.get("CIVIS_SERVICE_HANDOFF_SOCKET", "")

    def make_handoff(self) -> HandoffServer | None:
        if not self.handoff_socket:
            return None
        if not self.store.blobs_are_local:
            self.log.warning(
                "handoff_socket is ignored: blobs at %s are not on a local disk",
                _redact(self.blob_url),
            )
            return None

        def run(fn, *args, **kwargs):
            call = functools.partial(fn, *args, **kwargs)
            return asyncio.get_running_loop().run_in_executor(self.executor, call)

        def served(status):
            self.metrics.requests.labels("Handoff", "SOCKET", str(status)).inc()
            if status == 200:
                self.metrics.hits.inc()
            elif status == 404:
                self.metrics.misses.inc()

        return HandoffServer(
            self.handoff_socket,
            hub_auth=self.hub_auth,
            store=self.store,
            run=run,
            on_served=served,
            log=self.log,
        )

    def make_app(self) -> web.Application:
        p = self.service_prefix
        hub_auth = self.hub_auth
        jinja = jinja2.Environment(
            loader=jinja2.FileSystemLoader(os.path.join(HERE, "templates")), autoescape=True
        )
        jinja.filters["age"] = _age
        jinja.filters["size"] = _size
        rid = r"([^/]+)"
        return web.Application(
            [
                (p + "health", HealthHandler),
                ("/health", HealthHandler),
                (p + "metrics", MetricsHandler),
                ("/metrics", MetricsHandler),
                (p + "oauth_callback", OAuthCallback),
                (p + "api/results", ResultsHandler),
                (p + f"api/results/{rid}", ResultHandler),
                (p + f"api/results/{rid}/info", InfoHandler),
                (p + f"api/results/{rid}/pins", PinsHandler),
                (p + "api/.*", NotFoundHandler),
                (p + f"results/{rid}/delete", DeletePage),
                (p.rstrip("/") + "/?", QueriesPage),
            ],
            hub_auth=hub_auth,
            store=self.store,
            metrics=self.metrics,
            executor=self.executor,
            jinja=jinja,
            service_prefix=p,
            max_result_bytes=self.max_result_bytes,
            after_commit=self.schedule_maintenance,
            cookie_secret=self.cookie_secret,
            log_function=_log_request,
            login_url=hub_auth.login_url,
        )

    # -- maintenance (retention + orphans); idempotent, safe on every replica
    def _maintain(self):
        try:
            evicted = self.store.evict()
            if evicted:
                self.metrics.evictions.inc(len(evicted))
                self.log.info("evicted %d result(s)", len(evicted))
            removed = self.store.cleanup()
            if removed:
                self.log.info("removed %d orphaned upload(s)/blob(s)", len(removed))
        except Exception:
            self.log.exception("maintenance failed")

    def schedule_maintenance(self):
        """Run a maintenance round soon; requests during a round queue exactly one more."""
        if getattr(self, "_maintaining", False):
            self._maintain_again = True
            return
        self._maintaining = True
        self._maintain_again = False
        loop = IOLoop.current()

        def done(_):
            def finish():
                self._maintaining = False
                if self._maintain_again:
                    self.schedule_maintenance()

            loop.add_callback(finish)

        loop.run_in_executor(self.executor, self._maintain).add_done_callback(done)

    def start(self):
        app = self.make_app()
        server = HTTPServer(app, max_body_size=self.max_result_bytes, xheaders=True)
        server.listen(self.port, self.ip)
        self.log.info(
            "civis service on http://%s:%d%s (blobs: %s)",
            self.ip,
            self.port,
            self.service_prefix,
            _redact(self.blob_url),
        )
        loop = IOLoop.current()
        handoff = self.make_handoff()
        if handoff is not None:
            loop.add_callback(handoff.start)
            self.log.info("same-host handoff on %s", self.handoff_socket)
        self.schedule_maintenance()
        PeriodicCallback(self.schedule_maintenance, self.cleanup_interval * 1000).start()

        def stop(*_):
            loop.add_callback_from_signal(loop.stop)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        loop.start()
        if handoff is not None:
            handoff.stop()
        server.stop()
        self.executor.shutdown(wait=True)
        self.store.close()


def _log_request(handler) -> None:
    """Access log without query strings (a token passed in a URL is never logged)."""
    status = handler.get_status()
    log = logging.getLogger("tornado.access")
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    ms = 1000.0 * handler.request.request_time()
    log.log(level, "%d %s %s %.1fms", status, handler.request.method, handler.request.path, ms)


def _redact(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(parsed.password, "***")
    return url


def _age(ts: float, now: float) -> str:
    s = max(0, int(now - ts))
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= n:
            return f"{s // n} {unit} ago"
    return f"{s} s ago"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def main(argv=None):
    app = CivisService()
    app.initialize(argv)
    app.start()
