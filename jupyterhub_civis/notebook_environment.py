"""Single-user server extension: make a server's environment visible and recorded.

Enabled by the bundle's ``jupyter_server_config.d`` file. In a server started
by a Civis spawner (``CIVIS_ENVIRONMENT_JSON`` is set) it

- writes ``metadata.jupyterhub_civis.environment`` = what the server runs
  (name, content id or image, packages) into every notebook saved there;
- adds the environment to every kernel's display name, so JupyterLab's
  launcher and kernel picker say ``Python 3 (ipykernel) · geo``;
- sets the process title to ``jupyterhub-singleuser <user>/<server> [<environment>]``
  so ``ps`` tells servers apart.

Outside a Civis server it does nothing.
"""

from __future__ import annotations

import inspect
import json
import os

from jupyterhub_civis import envvars
from jupyterhub_civis.protocol import IMAGE_DIGEST_ANNOTATION as DIGEST_ANNOTATION

ENV_VAR = envvars.ENVIRONMENT_JSON
PODINFO_VAR = envvars.PODINFO_DIR
# image_digest: known before start on Docker (the env var has it); Kubernetes annotates
# the pod once the image is pulled (read at save time, below)
RECORDED_KEYS = ("name", "id", "image", "image_digest", "packages")


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


def environment_label(record: dict) -> str:
    """``geo``, or ``geo + humanize, tabulate`` with the server's extra packages (names only)."""
    from packaging.requirements import InvalidRequirement, Requirement

    names = []
    for text in record.get("extra_packages") or []:
        try:
            names.append(Requirement(text).name)
        except InvalidRequirement:
            names.append(text)
    label = record.get("name") or "?"
    return f"{label} + {', '.join(names)}" if names else label


def labelled(display_name: str, label: str) -> str:
    suffix = f" · {label}"
    return display_name if display_name.endswith(suffix) else display_name + suffix


def label_kernelspecs(kernel_spec_manager, label: str) -> None:
    """Append `` · <label>`` to every kernel display name this server offers."""
    get_all_specs = kernel_spec_manager.get_all_specs
    get_kernel_spec = kernel_spec_manager.get_kernel_spec

    def label_all(specs):
        for entry in specs.values():
            spec = entry.get("spec") or {}
            if "display_name" in spec:
                spec["display_name"] = labelled(spec["display_name"], label)
        return specs

    def label_one(spec):
        spec.display_name = labelled(spec.display_name, label)
        return spec

    def all_specs():
        return _then(get_all_specs(), label_all)

    def kernel_spec(name, *args, **kwargs):
        return _then(get_kernel_spec(name, *args, **kwargs), label_one)

    kernel_spec_manager.get_all_specs = all_specs
    kernel_spec_manager.get_kernel_spec = kernel_spec


def _then(result, change):
    """``change(result)``, also when ``result`` is awaitable (async kernel spec managers)."""
    if inspect.isawaitable(result):

        async def changed():
            return change(await result)

        return changed()
    return change(result)


def server_title(environ=os.environ, label: str = "") -> str:
    user = environ.get("JUPYTERHUB_USER", "")
    server = environ.get("JUPYTERHUB_SERVER_NAME", "")
    title = f"jupyterhub-singleuser {user}/{server}" if server else f"jupyterhub-singleuser {user}"
    return f"{title} [{label}]" if label else title


def set_process_title(title: str) -> bool:
    try:
        from setproctitle import setproctitle
    except ImportError:  # an image without it: ps shows the command line
        return False
    setproctitle(title)
    return True


def _jupyter_server_extension_points():
    return [{"module": "jupyterhub_civis.notebook_environment"}]


def _load_jupyter_server_extension(serverapp):
    environment = environment_from_env()
    if environment is None:
        serverapp.log.debug("jupyterhub_civis: no CIVIS_ENVIRONMENT_JSON; not recording")
        return
    label = environment_label(json.loads(os.environ[ENV_VAR]))
    label_kernelspecs(serverapp.kernel_spec_manager, label)
    set_process_title(server_title(os.environ, label))

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
