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

ENV_VAR = "CIVIS_ENVIRONMENT_JSON"
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

    def pre_save(model, **kwargs):
        record_environment(model, environment)

    serverapp.contents_manager.register_pre_save_hook(pre_save)
    serverapp.log.info(
        "jupyterhub_civis: recording environment %s in saved notebooks", environment.get("name")
    )
