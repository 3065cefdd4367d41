"""The query cache jupyter-server extension (``QueryCache`` in config files).

Enable it in a plain server with
``jupyter server --ServerApp.jpserver_extensions='{"jupyterhub_civis.query_cache": true}'``;
the bundle's ``jupyter_server_config.d`` file enables it in single-user servers.
"""

from __future__ import annotations

import os
import urllib.parse

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import ensure_async
from tornado.ioloop import PeriodicCallback
from traitlets import Dict, Enum, Float, Int, Type, Unicode, default

from jupyterhub_civis import envvars
from jupyterhub_civis.query_cache import modes
from jupyterhub_civis.query_cache.handlers import handlers
from jupyterhub_civis.query_cache.local_store import LocalStore
from jupyterhub_civis.query_cache.manager import QueryManager
from jupyterhub_civis.query_cache.pins import merge_deliverable, merge_pins
from jupyterhub_civis.query_cache.pool import SessionPool
from jupyterhub_civis.query_cache.store import ResultStore
from jupyterhub_civis.query_cache.tiered_store import TieredStore
from jupyterhub_civis.query_cache.warehouse import Connection, PostgresExecution


class QueryCache(ExtensionApp):
    name = "jupyterhub_civis.query_cache"
    description = "Warehouse query proxy with a persistent, reproducible result cache"
    load_other_extensions = True

    connections = Dict(
        help="""Warehouse connections users may query, by name.

        Each value is a SQLAlchemy URL, or a dict ``{"url": ..., "settings":
        {...}, "principal": ...}``. ``${VAR}`` in a URL is replaced from the
        server's environment when connecting: put passwords there, e.g.
        ``"postgresql://analyst:${WAREHOUSE_PASSWORD}@db:5432/sales"``. The
        cache key uses the URL *template* with the password masked, never the
        secret. ``settings`` are session settings applied on connect (e.g.
        ``{"TimeZone": "UTC"}``) and are part of the cache key. ``principal``
        overrides the identity the key records (default: the URL's user name).
        The name ``default`` is used when a query names no connection.
        PostgreSQL URLs are fetched through ADBC, ``duckdb:///path`` through
        DuckDB (read-only), anything else through SQLAlchemy.
        """,
    ).tag(config=True)

    store_dir = Unicode(
        help="""Folder of the server-local result store (Arrow IPC files + SQLite metadata);
        the hot tier when ``service_url`` is set.

        Default: ``$CIVIS_QUERY_CACHE_DIR`` if the spawner sets it (it should
        name one folder per user, shared by that user's named servers, so a
        notebook copied between them finds its pinned results), else
        ``<jupyter data dir>/civis-query-cache/<JUPYTERHUB_USER or 'local'>``.
        """,
    ).tag(config=True)

    @default("store_dir")
    def _default_store_dir(self):
        if os.environ.get(envvars.QUERY_CACHE_DIR):
            return os.environ[envvars.QUERY_CACHE_DIR]
        user = os.environ.get("JUPYTERHUB_USER") or "local"
        return os.path.join(jupyter_data_dir(), "civis-query-cache", user)

    max_store_bytes = Int(
        10 * 1024**3,
        help="Size budget of the result store, in bytes (default 10 GiB; 0 = unlimited). "
        "Least recently used results are evicted first; pinned results never are.",
    ).tag(config=True)

    max_store_age = Float(
        30 * 24 * 3600.0,
        help="Age budget of the result store, in seconds (default 30 days; 0 = unlimited). "
        "Older unpinned results are evicted.",
    ).tag(config=True)

    max_result_bytes = Int(
        2 * 1024**3,
        help="Largest single result stored, in bytes of Arrow IPC (default 2 GiB; 0 = unlimited). "
        "A bigger result fails with a clear error and nothing is cached.",
    ).tag(config=True)

    default_mode = Enum(
        list(modes.MODES),
        default_value=modes.REFRESH,
        help="""Mode when neither the call nor the notebook chooses one.

        A notebook chooses with ``metadata.jupyterhub_civis.deliverable``
        (``"analysis"`` -> reproducible, ``"report"`` -> refresh) or
        ``metadata.jupyterhub_civis.query_mode``.
        """,
    ).tag(config=True)

    max_concurrent_queries = Int(
        4, help="Warehouse queries this server runs at once; more wait in state 'queued'."
    ).tag(config=True)

    history_limit = Int(
        200, help="Finished queries kept for the status API and page (most recent first)."
    ).tag(config=True)

    postgres_batch_size_hint_bytes = Int(
        4 * 1024**2,
        help="ADBC PostgreSQL batch size hint, in bytes: smaller shows progress sooner, "
        "larger fetches slightly faster.",
    ).tag(config=True)

    warehouse_idle_timeout = Float(
        300.0,
        help="""Seconds a PostgreSQL warehouse session may stay idle in this server's pool.

        A cache miss reuses an idle session to the same resolved connection (same
        URL after ``${VAR}`` expansion) instead of connecting anew; every reused
        session is reset (``DISCARD ALL``, which also checks it is alive) and gets
        the connection's settings again. A cancelled or failed query's session is
        closed, never reused. Lower this if the warehouse limits connections or
        closes idle ones sooner; 0 turns pooling off (a new session per query).
        """,
    ).tag(config=True)

    warehouse_pool_size = Int(
        4,
        help="""Idle PostgreSQL sessions kept per resolved connection in this server
        (``max_concurrent_queries`` bounds those in use). Each holds one warehouse
        connection while idle, up to ``warehouse_idle_timeout`` seconds.""",
    ).tag(config=True)

    service_url = Unicode(
        help="""The civis Hub service's URL, with its prefix (e.g.
        ``http://civis-service:10101/services/civis/``), used as the durable tier.

        Default: ``$CIVIS_SERVICE_URL``, which ``declare_service`` in the hub config
        gives every server. When set (and the server has ``$JUPYTERHUB_API_TOKEN``),
        results are stored in the service, shared by all of the user's servers, and
        ``store_dir`` becomes a hot tier holding memory-mappable copies. Empty: the
        local store alone.
        """,
    ).tag(config=True)

    @default("service_url")
    def _default_service_url(self):
        return os.environ.get(envvars.SERVICE_URL, "")

    store_class = Type(
        klass=ResultStore,
        help="""The result store (a ``jupyterhub_civis.query_cache.store.ResultStore``
        subclass, or its import name), built with its ``from_extension(this app)``.

        Default: ``TieredStore`` (``store_dir`` as hot tier over the civis service)
        when ``service_url`` is set and the server has a Hub token
        ($JUPYTERHUB_API_TOKEN), else ``LocalStore`` (``store_dir`` alone).
        ``ServiceStore`` keeps nothing locally. The service client's own settings
        are ``c.ServiceStore.<trait>``.""",
    ).tag(config=True)

    @default("store_class")
    def _default_store_class(self):
        if self.service_url and os.environ.get("JUPYTERHUB_API_TOKEN"):
            return TieredStore
        return LocalStore

    def initialize_settings(self):
        connections = {
            name: Connection.from_config(name, value) for name, value in self.connections.items()
        }
        PostgresExecution.batch_size_hint_bytes = self.postgres_batch_size_hint_bytes
        self.store = self.store_class.from_extension(self)
        self.pool = SessionPool(
            idle_timeout=self.warehouse_idle_timeout, max_idle=self.warehouse_pool_size
        )
        if self.warehouse_idle_timeout > 0:
            # idle sessions close on time even when no query comes to notice
            self._pruner = PeriodicCallback(
                self.pool.prune, max(1.0, self.warehouse_idle_timeout / 2) * 1000
            )
            self._pruner.start()
        serverapp = self.serverapp
        self.manager = QueryManager(
            store=self.store,
            connections=connections,
            default_mode=self.default_mode,
            max_result_bytes=self.max_result_bytes or None,
            max_workers=self.max_concurrent_queries,
            history_limit=self.history_limit,
            notebook_for_kernel=self._notebook_for_kernel,
            notebook_metadata=self._notebook_metadata,
            log=self.log,
            pool=self.pool,
        )
        self._metadata_cache: dict[str, tuple] = {}
        serverapp.contents_manager.register_pre_save_hook(self._pre_save)
        self.log.info(
            "civis query cache: store %s%s, connections %s",
            self.store_dir,
            f" (hot tier of {self.service_url})" if isinstance(self.store, TieredStore) else "",
            ", ".join(sorted(connections)) or "none",
        )

    def initialize_handlers(self):
        # the service's pages are reached through the hub's proxy at the same path
        my_queries = urllib.parse.urlsplit(self.service_url).path if self.service_url else ""
        self.handlers.extend(handlers(self.manager, my_queries))

    async def _notebook_for_kernel(self, kernel_id: str) -> str | None:
        sessions = await ensure_async(self.serverapp.session_manager.list_sessions())
        for s in sessions:
            if (s.get("kernel") or {}).get("id") == kernel_id and s.get(
                "type", "notebook"
            ) == "notebook":
                return s.get("path")
        return None

    async def _notebook_metadata(self, path: str) -> dict | None:
        """The notebook's saved metadata (cached until the file changes)."""
        cm = self.serverapp.contents_manager
        try:
            if not await ensure_async(cm.file_exists(path)):
                return None
            stamp = (await ensure_async(cm.get(path, content=False, type="notebook")))[
                "last_modified"
            ]
            cached = self._metadata_cache.get(path)
            if cached and cached[0] == stamp:
                return cached[1]
            model = await ensure_async(cm.get(path, content=True, type="notebook"))
        except Exception as e:
            self.log.warning("civis query cache: cannot read %s: %s", path, e)
            return None
        metadata = dict((model.get("content") or {}).get("metadata") or {})
        self._metadata_cache[path] = (model["last_modified"], metadata)
        await self.manager.protect_pins(path, metadata)
        return metadata

    def _pre_save(self, model, path, **kwargs):
        merge_pins(model, self.manager.pins_for(path))
        merge_deliverable(model, self.manager.notebook_deliverables.get(path))

    async def stop_extension(self):
        if getattr(self, "_pruner", None) is not None:
            self._pruner.stop()
        self.manager.shutdown()
