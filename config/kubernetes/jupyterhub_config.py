"""Kubernetes without the z2jh chart: the hub runs in (or next to) a cluster.

Deployment assumptions
- The hub reaches the Kubernetes API with an in-cluster service account or a
  kubeconfig (``KUBECONFIG``); its role may create/delete/get/list/watch/patch
  pods, persistentvolumeclaims, events (read) in ``CIVIS_NAMESPACE`` — the
  same RBAC the z2jh chart gives its hub.
- configurable-http-proxy runs next to the hub (started by the hub unless
  ``CIVIS_PROXY_API_URL`` points at an external one) and user pods' IPs are
  routable from the proxy; pods reach the hub at ``CIVIS_HUB_CONNECT_URL``.
- Each catalog image has ``jupyterhub-singleuser`` (and, to record environments
  in notebooks, ``jupyterhub-civis``) installed.
- Users log in with the shared demo password below: replace the authenticator.
- State (hub database, cookie secret) lives in ``CIVIS_STATE_DIR``.
- The civis Hub service (durable query results, docs/service.md) runs next to
  the hub as a managed service, listening on ``CIVIS_SERVICE_PORT`` (10101),
  data in ``CIVIS_STATE_DIR/civis-service``; pods reach it at
  ``CIVIS_SERVICE_CONNECT_URL`` (e.g. ``http://hub.jupyterhub.svc:10101``).
  With ``CIVIS_SERVICE_TOKEN`` set, the hub starts nothing: the service runs
  as replicas on PostgreSQL + ``s3://`` (a Deployment behind
  ``CIVIS_SERVICE_CONNECT_URL``, see docs/kubernetes.md) with that token.

With the z2jh chart use helm-values/values.yaml instead; see docs/kubernetes.md.
"""

import os

from jupyterhub_civis.service.hubconfig import declare_service
from jupyterhub_civis.spawner.hub_pages import use_hub_pages
from jupyterhub_civis.spawner.kube import CivisKubeSpawner

c = get_config()  # noqa: F821 (provided by JupyterHub)

state = os.path.abspath(os.environ.get("CIVIS_STATE_DIR", "."))
os.makedirs(state, exist_ok=True)

c.JupyterHub.ip = os.environ.get("CIVIS_HUB_IP", "0.0.0.0")
c.JupyterHub.port = int(os.environ.get("CIVIS_HUB_PORT", "8000"))
c.JupyterHub.hub_ip = os.environ.get("CIVIS_HUB_BIND_IP", "0.0.0.0")
c.JupyterHub.hub_port = int(os.environ.get("CIVIS_HUB_API_PORT", "8081"))
if os.environ.get("CIVIS_HUB_CONNECT_URL"):
    # how pods reach the hub's API, e.g. http://hub.jupyterhub.svc:8081
    c.JupyterHub.hub_connect_url = os.environ["CIVIS_HUB_CONNECT_URL"]
if os.environ.get("CIVIS_PROXY_API_URL"):
    c.ConfigurableHTTPProxy.api_url = os.environ["CIVIS_PROXY_API_URL"]
    c.ConfigurableHTTPProxy.should_start = os.environ.get("CIVIS_PROXY_SHOULD_START", "0") == "1"
if os.environ.get("CIVIS_PROXY_COMMAND"):
    c.ConfigurableHTTPProxy.command = [os.environ["CIVIS_PROXY_COMMAND"]]
c.ConfigurableHTTPProxy.pid_file = os.path.join(state, "jupyterhub-proxy.pid")
c.JupyterHub.db_url = os.environ.get(
    "CIVIS_DB_URL", "sqlite:///" + os.path.join(state, "jupyterhub.sqlite")
)
c.JupyterHub.cookie_secret_file = os.path.join(state, "jupyterhub_cookie_secret")

c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = os.environ.get("CIVIS_DEMO_PASSWORD", "civis-demo")
c.Authenticator.allow_all = True

c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 5  # stopped servers count until deleted
use_hub_pages(c)  # the home page shows each named server's environment
# servers are pods: they keep running while the hub restarts
c.JupyterHub.cleanup_servers = False

c.JupyterHub.spawner_class = "civis-kube"
c.Spawner.default_url = "/lab"
c.Spawner.cmd = ["jupyterhub-singleuser"]
c.Spawner.start_timeout = 600  # includes pulling an image onto a node
c.Spawner.http_timeout = 120
c.KubeSpawner.namespace = os.environ.get("CIVIS_NAMESPACE", "jupyterhub")
c.KubeSpawner.events_enabled = True
c.KubeSpawner.extra_labels = {"hub.jupyter.org/network-access-hub": "true"}
c.KubeSpawner.storage_pvc_ensure = True
c.KubeSpawner.storage_capacity = os.environ.get("CIVIS_HOME_SIZE", "10Gi")
c.CivisKubeSpawner.storage_policy = os.environ.get("CIVIS_STORAGE_POLICY", "per-server")
c.CivisKubeSpawner.extra_packages = "reject"

c.CivisSpawner.environments = [
    {
        "name": "python",
        "display_name": "Python",
        "description": "Jupyter base image with JupyterLab.",
        "image": "quay.io/jupyter/base-notebook:2025-01-06",
        "default": True,
    },
    {
        "name": "scipy",
        "display_name": "SciPy",
        "description": "pandas, scikit-learn, matplotlib and friends.",
        "image": "quay.io/jupyter/scipy-notebook:2025-01-06",
        "resources": {"cpu_limit": 2, "mem_limit": "4G", "mem_guarantee": "1G"},
    },
]

service_port = int(os.environ.get("CIVIS_SERVICE_PORT", "10101"))
if os.environ.get("CIVIS_SERVICE_TOKEN"):
    declare_service(
        c,
        url=os.environ["CIVIS_SERVICE_CONNECT_URL"],
        api_token=os.environ["CIVIS_SERVICE_TOKEN"],
    )
else:
    declare_service(
        c,
        url=os.environ.get("CIVIS_SERVICE_CONNECT_URL", f"http://127.0.0.1:{service_port}"),
        data_dir=os.path.join(state, "civis-service"),
        args=["--CivisService.ip=0.0.0.0", f"--CivisService.port={service_port}"],
    )

CivisKubeSpawner.check_config(c)  # a broken catalog stops the hub here, with the reason
