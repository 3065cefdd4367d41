"""Local backend: every named server is a process on the hub's machine.

All servers run as the hub's OS user (``SimpleLocalProcessSpawner``), each in
its own working folder, each with the Python environment its catalog entry
and extra packages describe.
"""

from __future__ import annotations

import hashlib
import os
import sys
from importlib.resources import files

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Bool, Float, Unicode, default

from jupyterhub_civis.spawner.base import CivisSpawner, EnvironmentUnavailable, SpawnRejected
from jupyterhub_civis.spawner.names import is_safe_name, safe_name
from jupyterhub_civis.spawner.preload import PreloadedStart
from jupyterhub_civis.spawner.requirements import environment_id
from jupyterhub_civis.spawner.venv_builder import (
    BuildError,
    LayeredVenvBuilder,
    base_fingerprint,
    interpreter,
)

_builders: dict[tuple[str, float], LayeredVenvBuilder] = {}


def _legacy_folder_name(name: str) -> str:
    # before 0.2 unsafe names (e.g. e-mail user names) became "_<hash>"; such folders are kept
    return "_" + hashlib.sha256(name.encode()).hexdigest()[:16]


def folder_name(root: str, name: str) -> str:
    """The folder under ``root`` for a user or server name (``names.safe_name``);
    ``_default`` for the default server (no safe name starts with ``_``)."""
    legacy = _legacy_folder_name(name or "_default")
    if not is_safe_name(name) and os.path.isdir(os.path.join(root, legacy)):
        return legacy
    return safe_name(name) if name else "_default"


def _bundle_jupyter_config() -> str:
    return str(files("jupyterhub_civis") / "jupyter-config")


class CivisLocalSpawner(CivisSpawner, PreloadedStart, SimpleLocalProcessSpawner):
    """Named servers as local processes, each in its own Python environment.

    Not an isolation boundary between users: like ``SimpleLocalProcessSpawner``
    it runs every server as the hub's OS user. Use it for one-machine demos,
    development and trusted teams.
    """

    servers_root = Unicode(
        config=True,
        help="""
        Folder holding each server's working folder, laid out as
        ``<servers_root>/<user>/<server>`` (the default server uses ``_default``).
        Names that are not safe as folder names (``$p~c|a! ch@rs``) become
        ``<slug>---<hash>`` (see ``jupyterhub_civis.spawner.names``).
        Default: ``civis-servers`` in the hub's working directory.
        """,
    )

    environments_root = Unicode(
        config=True,
        help="""
        Folder where environments with extra packages are built, one folder per
        content id, shared by all servers that ask for the same packages on the
        same base. Safe to delete while no server runs: environments are rebuilt
        on demand. Default: ``civis-environments`` in the hub's working directory.
        """,
    )

    build_timeout = Float(
        600,
        config=True,
        help="""
        Seconds a whole environment build (creating the venv, resolving and
        installing its packages) may take before it is stopped, its processes
        killed and the spawn fails. ``Spawner.start_timeout`` must be larger,
        since it includes the build.
        """,
    )

    preload_servers = Bool(
        False,
        config=True,
        help="""
        Start servers by forking a warm, preloaded Python process instead of a
        fresh interpreter; cuts several seconds of imports from every start.

        The hub keeps one such process per environment (per interpreter
        prefix), started on the first spawn in that environment and stopped
        when the hub exits. Each costs the memory of an idle single-user
        server (roughly 100-150 MB). Servers started this way behave as usual:
        same command, environment variables and working folder, stopped by pid.

        Variables an interpreter reads when it starts (``PYTHONPATH``,
        ``PYTHONHASHSEED``, ``LD_LIBRARY_PATH``, locale, ...) come from the
        preloaded process: servers with different values get different
        preloaded processes, and servers sharing one also share its hash seed.

        A server falls back to the normal start, with a warning in the hub's
        log, when its preloaded process cannot start or fails, or when
        ``cmd``, ``shell_cmd`` or ``popen_kwargs`` are customized.
        """,
    )

    @default("servers_root")
    def _default_servers_root(self):
        return os.path.abspath("civis-servers")

    @default("environments_root")
    def _default_environments_root(self):
        return os.path.abspath("civis-environments")

    @default("home_dir")
    def _default_home_dir(self):
        user_folder = os.path.join(self.servers_root, folder_name(self.servers_root, self.user.name))
        return os.path.join(user_folder, folder_name(user_folder, self.name))

    @property
    def builder(self) -> LayeredVenvBuilder:
        key = (os.path.abspath(self.environments_root), self.build_timeout)
        if key not in _builders:
            _builders[key] = LayeredVenvBuilder(key[0], timeout=self.build_timeout, log=self.log)
        return _builders[key]

    async def prepare_environment(self, environment, selection, emit) -> dict:
        if selection.image:
            raise SpawnRejected(
                "image: the local backend runs no containers; choose a catalog environment"
            )
        base = os.path.abspath(environment.local_prefix or sys.prefix)
        if not os.access(interpreter(base), os.X_OK):
            raise EnvironmentUnavailable(
                f"environment: {environment.name!r} is misconfigured on this hub "
                "(its local_prefix has no bin/python); tell your hub administrator",
                bad_request=False,
            )
        requirements = tuple(sorted(set(environment.packages) | set(selection.packages)))
        if requirements:
            emit(f"Preparing environment with {', '.join(requirements)}", 10)
            try:
                env_id, prefix = await self.builder.ensure(
                    base, requirements, on_line=lambda line: emit(line)
                )
            except BuildError as e:
                raise EnvironmentUnavailable(str(e), detail=e.log[-4000:]) from None
            prefix = str(prefix)
        else:
            env_id, prefix = environment_id(base_fingerprint(base), ()), base
        self.cmd = [interpreter(prefix), "-m", "jupyterhub.singleuser"]
        return {
            "name": environment.name,
            "id": env_id,
            "packages": list(requirements),
            "extra_packages": list(selection.packages),
            "prefix": prefix,
            "base_prefix": base,
        }

    def get_args(self):
        args = list(super().get_args())  # Spawner.get_args returns self.args itself
        if os.geteuid() == 0:
            # the hub runs as root (containers, CI): servers run as the same user
            args.append("--ServerApp.allow_root=True")
        return args

    def get_env(self):
        env = super().get_env()
        prefix = self.environment_record.get("prefix")
        if prefix:
            env["VIRTUAL_ENV"] = prefix
            env["PATH"] = os.pathsep.join(
                [
                    os.path.join(prefix, "bin"),
                    os.path.dirname(sys.executable),
                    env.get("PATH", os.defpath),
                ]
            )
        base = self.environment_record.get("base_prefix")
        # A layered environment's sys.prefix is its own folder, so Jupyter would
        # not find the base's config (enabled server extensions such as
        # JupyterLab) nor its data (lab assets, kernelspecs): point at them.
        _prepend(env, "JUPYTER_CONFIG_PATH", _bundle_jupyter_config())
        if base:
            _prepend(env, "JUPYTER_CONFIG_PATH", os.path.join(base, "etc", "jupyter"), last=True)
            _prepend(env, "JUPYTER_PATH", os.path.join(base, "share", "jupyter"))
            lab = os.path.join(base, "share", "jupyter", "lab")
            if os.path.isdir(lab):
                env.setdefault("JUPYTERLAB_DIR", lab)
        return env


def _prepend(env: dict, name: str, path: str, last: bool = False) -> None:
    parts = [p for p in env.get(name, "").split(os.pathsep) if p]
    env[name] = os.pathsep.join(parts + [path] if last else [path, *parts])
