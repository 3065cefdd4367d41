"""Every ``CIVIS_*`` environment variable the bundle's code sets or reads, named once.

Variables are read only in traitlets defaults (and the kernel client's
discovery); everything else uses these names. docs/architecture.md has the
table of who sets each and who reads it. The ready-made ``config/`` files read
a few deployment knobs of their own (``CIVIS_HUB_PORT``, ``CIVIS_STATE_DIR`` …),
listed in the same table.
"""

# ---- set by the Civis spawners for every server
#: the catalog environment's name
ENVIRONMENT = "CIVIS_ENVIRONMENT"
#: the environment's content id
ENVIRONMENT_ID = "CIVIS_ENVIRONMENT_ID"
#: the whole environment record (JSON), written into saved notebooks
ENVIRONMENT_JSON = "CIVIS_ENVIRONMENT_JSON"
#: the image a server runs (image backends)
IMAGE = "CIVIS_IMAGE"
#: Kubernetes: folder of the downward-API files (pod annotations)
PODINFO_DIR = "CIVIS_PODINFO_DIR"
#: Kubernetes: folder of packages an init container installed for the server
PACKAGES_DIR = "CIVIS_PACKAGES_DIR"

# ---- the query cache (single-user server extension and kernel client)
#: the server-local result folder (hot tier)
QUERY_CACHE_DIR = "CIVIS_QUERY_CACHE_DIR"
#: where a kernel reaches its server's query cache, and with which token
QUERY_CACHE_URL = "CIVIS_QUERY_CACHE_URL"
QUERY_CACHE_TOKEN = "CIVIS_QUERY_CACHE_TOKEN"

# ---- the civis Hub service, as servers see it (set by declare_service)
#: the service's URL with its prefix: the query cache's durable tier
SERVICE_URL = "CIVIS_SERVICE_URL"
#: the same-host handoff socket (also read by the service itself)
SERVICE_HANDOFF_SOCKET = "CIVIS_SERVICE_HANDOFF_SOCKET"

# ---- the civis Hub service's own defaults
SERVICE_DATA_DIR = "CIVIS_SERVICE_DATA_DIR"
SERVICE_DB_URL = "CIVIS_SERVICE_DB_URL"
SERVICE_BLOB_URL = "CIVIS_SERVICE_BLOB_URL"
#: JSON object of fsspec storage options for the blob URL
SERVICE_BLOB_OPTIONS = "CIVIS_SERVICE_BLOB_OPTIONS"
#: where the service reaches users' servers (the hub's proxy) to run reports
SERVICE_PROXY_URL = "CIVIS_SERVICE_PROXY_URL"
#: signs the service's browser session; replicas share it
SERVICE_COOKIE_SECRET = "JUPYTERHUB_CIVIS_COOKIE_SECRET"

# ---- image builds (Docker backend, and Kubernetes with a builder)
#: the registry built environment images are pushed to (``host[:port]``)
IMAGE_REGISTRY = "CIVIS_IMAGE_REGISTRY"
#: Docker's own variable: the daemon the builder talks to (``unix://…`` or ``tcp://…``)
DOCKER_HOST = "DOCKER_HOST"
