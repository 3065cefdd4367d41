"""One machine, local processes: the embedded demo and small trusted teams.

Deployment assumptions
- JupyterHub runs on one machine; every named server is a local process
  running as the hub's own OS user (``CivisLocalSpawner``). Users are NOT
  isolated from each other at the OS level: trusted users only.
- Login is a shared demo password (``SharedPasswordAuthenticator``): any
  username plus the password below. Replace the authenticator for real use.
- configurable-http-proxy comes from this project's ``node_modules`` (``make
  demo`` installs it) or from PATH.
- State (hub database, cookie secret, server folders, built environments,
  the demo warehouse and cached query results) lives in ``$CIVIS_STATE_DIR``
  (default: ``.demo/`` in the project).
"""

import os
import sys

from jupyterhub_civis.service.hubconfig import declare_reports, declare_service
from jupyterhub_civis.spawner import CivisLocalSpawner
from jupyterhub_civis.spawner.hub_pages import use_hub_pages

c = get_config()  # noqa: F821 (provided by JupyterHub)

here = os.path.dirname(os.path.abspath(__file__))
project = os.path.dirname(os.path.dirname(here))
state = os.path.abspath(os.environ.get("CIVIS_STATE_DIR", os.path.join(project, ".demo")))
os.makedirs(state, exist_ok=True)

#: The demo password; any username logs in with it.
DEMO_PASSWORD = os.environ.get("CIVIS_DEMO_PASSWORD", "civis-demo")

c.JupyterHub.ip = os.environ.get("CIVIS_HUB_IP", "127.0.0.1")
c.JupyterHub.port = int(os.environ.get("CIVIS_HUB_PORT", "8000"))
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("CIVIS_HUB_API_PORT", "8081"))
c.ConfigurableHTTPProxy.api_url = (
    f"http://127.0.0.1:{int(os.environ.get('CIVIS_PROXY_API_PORT', '8001'))}"
)
c.JupyterHub.db_url = "sqlite:///" + os.path.join(state, "jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = os.path.join(state, "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = os.path.join(state, "jupyterhub-proxy.pid")
local_proxy = os.path.join(project, "node_modules", ".bin", "configurable-http-proxy")
if os.path.exists(local_proxy):
    c.ConfigurableHTTPProxy.command = [local_proxy]

c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = DEMO_PASSWORD
c.Authenticator.allow_all = True

c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 5  # stopped servers count until deleted
use_hub_pages(c)  # the home page shows each named server's environment
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every server it started

c.JupyterHub.spawner_class = "civis-local"
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 300  # includes building environments with extra packages
c.Spawner.http_timeout = 60
c.CivisLocalSpawner.servers_root = os.path.join(state, "servers")
c.CivisLocalSpawner.environments_root = os.path.join(state, "environments")
# fork servers from one warm process per environment: ~1 s starts instead of ~5 s
c.CivisLocalSpawner.preload_servers = os.environ.get("CIVIS_PRELOAD_SERVERS", "1") == "1"
c.CivisSpawner.environments = [
    {
        "name": "python",
        "display_name": f"Python {sys.version_info.major}.{sys.version_info.minor}",
        "description": "The hub's own environment: JupyterLab, IPython.",
        "default": True,
    },
    {
        "name": "python-tabulate",
        "display_name": f"Python {sys.version_info.major}.{sys.version_info.minor} + tabulate",
        "description": "The same base plus the tabulate package, built once and shared.",
        "packages": ["tabulate==0.9.0"],
    },
]

# The civis Hub service (docs/service.md): durable per-user result store, "My
# queries" page at /services/civis/. Least privilege: see declare_service.
# Servers on this machine receive results from it as open files, not over HTTP
# (a Unix socket path must stay under 100 bytes; deeper state folders use HTTP).
handoff = os.path.join(state, "civis-service.sock")
declare_service(
    c,
    url=f"http://127.0.0.1:{int(os.environ.get('CIVIS_SERVICE_PORT', '10101'))}",
    data_dir=os.path.join(state, "civis-service"),
    handoff_socket=handoff if len(handoff) < 100 else None,
    live_shares=True,  # users may share a running server for pair work (share codes)
)
# Report links (docs/reports.md): the service starts a named server for a report's
# owner to run it, so it gets the Hub role that needs (servers, access to them, names).
declare_reports(c)

# The query cache: a DuckDB demo warehouse as the "default" connection, and one
# result folder per user shared by that user's servers.
load_subconfig(os.path.join(here, "query_cache_demo.py"))  # noqa: F821 (provided by JupyterHub)

CivisLocalSpawner.check_config(c)  # a broken catalog stops the hub here, with the reason
