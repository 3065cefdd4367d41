"""The "civis" JupyterHub managed service: the Application, its traitlets and its wiring.

Run by JupyterHub as a managed service (``jupyterhub-civis service``), it reads
its identity from the environment JupyterHub gives it (``JUPYTERHUB_API_TOKEN``,
``JUPYTERHUB_SERVICE_URL``, ``JUPYTERHUB_SERVICE_PREFIX``, OAuth client id).
The HTTP API and pages are in ``handlers/`` (one module per resource), the
same-host handoff in ``handoff.py``, the store in ``store.py``; docs/service.md
describes them for operators.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import json
import os
import signal
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuth
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop, PeriodicCallback
from traitlets import Dict, Float, Int, TraitError, Unicode, default, validate
from traitlets.config import Application

from jupyterhub_civis import envvars
from jupyterhub_civis.service import handlers, policy
from jupyterhub_civis.service.auth import current_groups, identify
from jupyterhub_civis.service.handlers.base import NotFoundHandler, log_request
from jupyterhub_civis.service.handoff import HandoffServer
from jupyterhub_civis.service.metrics import Metrics
from jupyterhub_civis.service.pages import STATIC, StaticFiles, make_jinja
from jupyterhub_civis.service.reports.app import Reports
from jupyterhub_civis.service.shares.audit import AuditLog
from jupyterhub_civis.service.shares.grants import read_result
from jupyterhub_civis.service.shares.render import RenderCache, warm_up
from jupyterhub_civis.service.shares.store import ShareStore
from jupyterhub_civis.service.store import DurableStore, private_dir


def _service_url():
    return urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101"))


class CivisService(Application):
    classes = [Reports]

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
        return os.path.abspath(os.environ.get(envvars.SERVICE_DATA_DIR, "civis-service"))

    db_url = Unicode(
        help="""SQLAlchemy URL of the metadata database.

        Default: SQLite in ``data_dir``. For several replicas use PostgreSQL, e.g.
        ``postgresql+psycopg://civis@db/civis``. The schema is created and upgraded
        with Alembic at start-up; existing data is kept.""",
    ).tag(config=True)

    @default("db_url")
    def _default_db_url(self):
        return os.environ.get(envvars.SERVICE_DB_URL) or "sqlite:///" + os.path.join(
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
        return os.environ.get(envvars.SERVICE_BLOB_URL) or os.path.join(self.data_dir, "blobs")

    blob_storage_options = Dict(
        help="""Extra fsspec storage options for ``blob_url``, e.g.
        ``{"endpoint_url": "http://minio:9000"}`` for an S3-compatible server.
        Default: $CIVIS_SERVICE_BLOB_OPTIONS (JSON) or none.""",
    ).tag(config=True)

    @default("blob_storage_options")
    def _default_blob_options(self):
        raw = os.environ.get(envvars.SERVICE_BLOB_OPTIONS)
        return json.loads(raw) if raw else {}

    max_total_bytes = Int(
        0,
        help="""Retention size budget in bytes over all users' results. Beyond it, the
        least recently used unpinned results of the user who stores the most bytes are
        evicted first (one user's heavy use never evicts everyone else's results).
        0: no total limit (each user is still held to ``max_user_bytes``).""",
    ).tag(config=True)

    max_user_bytes = Int(
        10 << 30,
        help="""Bytes of stored results each Hub user may keep (default 10 GiB); 0: no
        per-user limit. An upload that does not fit evicts the user's *own* least
        recently used unpinned results first; if their pinned results leave no room,
        it is refused with 413 and a message saying what to unpin or delete. Checked
        at every upload (concurrent uploads of one user may overshoot briefly).
        ``group_max_user_bytes`` overrides it for Hub groups.""",
    ).tag(config=True)

    group_max_user_bytes = Dict(
        value_trait=Int(),
        help="""Per-Hub-group overrides of ``max_user_bytes``, e.g.
        ``{"analysts": 50 * 2**30, "admins": 0}``: a user in several listed groups
        gets the largest (0: no limit). Group membership comes from the caller's Hub
        token, which must be allowed to read it (``read:users:groups!user``: user
        API tokens by default, server tokens through ``declare_service``); a token
        that may not gets ``max_user_bytes``.""",
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
        explicit = os.environ.get(envvars.SERVICE_COOKIE_SECRET)
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
        return os.environ.get(envvars.SERVICE_HANDOFF_SOCKET, "")

    handoff_socket_mode = Int(
        0o600,
        help="""Permission bits of the handoff socket (default ``0o600``: the service's OS
        user only, as in the local deployment where servers run as that user). Where
        servers run as other OS users (Docker), give them a group that owns the
        socket's folder (setgid) and use ``0o660``; never a mode other users may write.""",
    ).tag(config=True)

    @validate("handoff_socket_mode")
    def _no_world_access(self, proposal):
        if proposal.value & 0o007:
            raise TraitError(
                f"handoff_socket_mode {proposal.value:#o} lets every local user connect; "
                "use 0o600, or 0o660 with a group of the servers' OS users"
            )
        return proposal.value

    handoff_max_connections = Int(
        64,
        help="""Handoff connections served at once; more wait in the kernel's backlog until
        one ends (each connection holds a file descriptor).""",
    ).tag(config=True)

    handoff_idle_timeout = Float(
        10,
        help="Seconds a handoff connection may take to send its request before it is closed.",
    ).tag(config=True)


    def initialize(self, argv=None):
        self.parse_command_line(argv)
        if self.config_file:
            self.load_config_file(self.config_file)
            self.parse_command_line(argv)  # the command line wins over the file
        private_dir(self.data_dir)
        self.store = DurableStore(
            self.db_url,
            self.blob_url,
            storage_options=self.blob_storage_options,
            max_total_bytes=self.max_total_bytes,
            max_age=self.max_age,
            upload_stale_after=self.upload_stale_after,
            heartbeat_interval=max(self.upload_stale_after / 4, 0.05),
        )
        self.shares = ShareStore(self.store.session)
        self.executor = concurrent.futures.ThreadPoolExecutor(
            self.threads, thread_name_prefix="civis-io"
        )
        self.metrics = Metrics(self.store)
        self.hub_auth = HubOAuth(parent=self, api_url=os.environ.get("JUPYTERHUB_API_URL", ""))
        self.reports = Reports(parent=self).build(self.store.engine, self.run_in_pool)

    def user_budget(self, groups) -> int | None:
        """The byte budget of a user in Hub ``groups`` (None: unlimited)."""
        return policy.user_budget(groups, self.max_user_bytes, self.group_max_user_bytes)

    def run_in_pool(self, fn, *args, **kwargs):
        call = functools.partial(fn, *args, **kwargs)
        return asyncio.get_running_loop().run_in_executor(self.executor, call)

    def make_handoff(self) -> HandoffServer | None:
        if not self.handoff_socket:
            return None
        if not self.store.blobs_are_local:
            self.log.warning(
                "handoff_socket is ignored: blobs at %s are not on a local disk",
                _redact(self.blob_url),
            )
            return None
        return HandoffServer(
            self.handoff_socket,
            identify=functools.partial(identify, self.hub_auth),
            store=self.store,
            run=self.run_in_pool,
            on_served=self.metrics.handoff_served,
            log=self.log,
            mode=self.handoff_socket_mode,
            max_connections=self.handoff_max_connections,
            idle_timeout=self.handoff_idle_timeout,
            read=functools.partial(read_result, self.store, self.shares),
            current_groups=functools.partial(current_groups, self.hub_auth),
        )

    def make_app(self) -> web.Application:
        self.audit = AuditLog(self.shares.record_many, self.run_in_pool)
        return web.Application(
            handlers.routes(self.service_prefix),
            default_handler_class=NotFoundHandler,
            hub_auth=self.hub_auth,
            store=self.store,
            shares=self.shares,
            audit=self.audit,
            render_cache=RenderCache(),
            metrics=self.metrics,
            executor=self.executor,
            jinja=make_jinja(),
            menu=handlers.menu(self.service_prefix),
            static_path=STATIC,
            static_url_prefix=self.service_prefix + "static/",
            static_handler_class=StaticFiles,
            service_prefix=self.service_prefix,
            max_result_bytes=self.max_result_bytes,
            user_budget=self.user_budget,
            after_commit=self.schedule_maintenance,
            cookie_secret=self.cookie_secret,
            log_function=log_request,
            login_url=self.hub_auth.login_url,
            reports=self.reports,
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

    _maintaining = False
    _maintain_again = False

    def schedule_maintenance(self):
        """Run a maintenance round soon; requests during a round queue exactly one more."""
        if self._maintaining:
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
        asyncio.run(self.serve())

    async def serve(self):
        """Serve until SIGTERM or SIGINT, then close everything."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # small bodies by default; the upload handler raises its own request's limit
        server = HTTPServer(self.make_app(), max_body_size=1 << 20, xheaders=True)
        server.listen(self.port, self.ip)
        self.log.info(
            "civis service on http://%s:%d%s (blobs: %s)",
            self.ip,
            self.port,
            self.service_prefix,
            _redact(self.blob_url),
        )
        handoff = self.make_handoff()
        if handoff is not None:
            handoff.start()
            self.log.info("same-host handoff on %s", self.handoff_socket)
        # the renderer's imports take seconds: after listening, so the hub sees us up
        loop.run_in_executor(self.executor, warm_up)
        self.schedule_maintenance()
        maintenance = PeriodicCallback(self.schedule_maintenance, self.cleanup_interval * 1000)
        maintenance.start()
        self.reports.start()
        try:
            await stop.wait()
        finally:
            await self.reports.stop()
            maintenance.stop()
            server.stop()  # no new views; then the audit of those answered is written
            await self.audit.close()
            if handoff is not None:
                handoff.stop()
            self.executor.shutdown(wait=True)
            self.store.close()


def _redact(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(parsed.password, "***")
    return url


def main(argv=None):
    app = CivisService()
    app.initialize(argv)
    app.start()
