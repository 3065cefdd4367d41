"""Single-user server extension: record a server's environment in saved notebooks.

Enabled by the bundle's ``jupyter_server_config.d`` file. On every notebook
save it writes ``metadata.jupyterhub_civis.environment`` = what the server
runs (name, content id or image, packages), taken from the
``CIVIS_ENVIRONMENT_JSON`` variable the Civis spawners set. Outside a Civis
server the variable is absent and the hook does nothing.
"""

from __future__ import annotations

import json
import os

from jupyterhub_civis import envvars
from jupyterhub_civis.protocol import IMAGE_DIGEST_ANNOTATION as DIGEST_ANNOTATION

ENV_VAR = envvars.ENVIRONMENT_JSON
PODINFO_VAR = envvars.PODINFO_DIR
RECORDED_KEYS = ("name", "id", "image", "packages")


def environment_from_env(environ=os.environ) -> dict | None:
    raw = environ.get(ENV_VAR)
    if not raw:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return {k: record[k] for k in RECORDED_KEYS if record.get(k) not in (None, "")}


def image_digest(podinfo_dir: str | None) -> str | None:
    """The pinned image reference (``repo@sha256:…``) a Kubernetes pod runs.

    The spawner annotates the pod once the image is pulled; the downward API
    shows annotations as ``key="value"`` lines in ``<podinfo_dir>/annotations``.
    Read at save time because the annotation arrives after the server started.
    """
    if not podinfo_dir:
        return None
    try:
        with open(os.path.join(podinfo_dir, "annotations")) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key == DIGEST_ANNOTATION:
            try:
                return json.loads(value) or None
            except ValueError:
                return None
    return None


def record_environment(model: dict, environment: dict | None) -> None:
    """Pre-save hook body: stamp ``environment`` into a notebook model in place."""
    if not environment or model.get("type") != "notebook":
        return
    content = model.get("content")
    if not isinstance(content, dict):
        return
    metadata = content.setdefault("metadata", {})
    metadata.setdefault("jupyterhub_civis", {})["environment"] = environment


def _jupyter_server_extension_points():
    return [{"module": "jupyterhub_civis.notebook_environment"}]


def _load_jupyter_server_extension(serverapp):
    environment = environment_from_env()
    if environment is None:
        serverapp.log.debug("jupyterhub_civis: no CIVIS_ENVIRONMENT_JSON; not recording")
        return

    podinfo_dir = os.environ.get(PODINFO_VAR)

    def pre_save(model, **kwargs):
        digest = image_digest(podinfo_dir)
        record_environment(
            model, {**environment, "image_digest": digest} if digest else environment
        )

    serverapp.contents_manager.register_pre_save_hook(pre_save)
    serverapp.log.info(
        "jupyterhub_civis: recording environment %s in saved notebooks", environment.get("name")
    )
