"""The execution server extension (``ExecutionApp`` in config files).

Enabled in single-user servers by the bundle's ``jupyter_server_config.d``
file. It runs notebooks with nbclient on the server's own kernels for the
server's owner and for the Hub services named in ``allowed_services`` (the
civis service's report runner); docs/reports.md describes the API.
"""

from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp
from traitlets import Float, Int, List, Unicode

from jupyterhub_civis.execution.engine import Runner
from jupyterhub_civis.execution.handlers import handlers

QUERY_CACHE = "jupyterhub_civis.query_cache"


class ExecutionApp(ExtensionApp):
    name = "jupyterhub_civis.execution"
    description = "Run notebooks in this server for its owner (report runs)"
    load_other_extensions = True

    allowed_services = List(
        Unicode(),
        default_value=["civis"],
        help="""Hub services (by name) that may run notebooks here besides the server's
        owner: the civis service runs reports as their owner's server. Other Hub users
        with access to this server (JupyterHub shares) may not: they get 403.""",
    ).tag(config=True)

    default_timeout = Float(
        3600, help="Seconds a run may take (kernel start included) when its request names none."
    ).tag(config=True)

    max_timeout = Float(
        6 * 3600, help="Largest timeout a request may ask for, in seconds; more is refused (400)."
    ).tag(config=True)

    kernel_name = Unicode(
        "python3", help="Kernel for notebooks whose metadata names no kernelspec."
    ).tag(config=True)

    startup_timeout = Float(120, help="Seconds to wait for a run's kernel to be ready.").tag(
        config=True
    )

    history_limit = Int(50, help="Finished runs kept in memory for the status API.").tag(
        config=True
    )

    def initialize_settings(self):
        self.runner = Runner(
            sessions=self.serverapp.session_manager,
            kernels=self.serverapp.kernel_manager,
            queries=None,
            kernel_name=self.kernel_name,
            startup_timeout=self.startup_timeout,
            history_limit=self.history_limit,
            log=self.log,
        )

    def query_manager(self):
        """The query cache's manager, when that extension runs in this server."""
        package = self.serverapp.extension_manager.extensions.get(QUERY_CACHE)
        point = package.extension_points.get(QUERY_CACHE) if package else None
        app = getattr(point, "app", None) if point else None
        return getattr(app, "manager", None)

    def initialize_handlers(self):
        self.handlers.extend(handlers(self))

    async def stop_extension(self):
        for execution in self.runner.running():
            await self.runner.cancel(execution)
