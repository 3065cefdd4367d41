"""``DockerImageBuilder``: environment images built by a Docker daemon, pushed to a registry.

One build is one container: FROM the base image's digest, run as the image's
own (non-root) user, ``uv pip install`` of the requirements into the image's
environment, committed as one layer. Its output lines are the spawn's
progress. Only a build that exited 0 is committed and tagged; the tag is
pushed and then read back from the registry (push, then verify by digest), so
a failed, timed-out or cancelled build leaves no tag locally or in the
registry, and its container is removed.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading

import docker
from docker.errors import APIError, NotFound
from traitlets import Bool, Dict, Unicode, default

from jupyterhub_civis import envvars
from jupyterhub_civis.spawner.image_builder import ImageBuilder, ImageBuildError, LineSink

BUILD_LABEL = "jupyterhub-civis.build"


def install_command(requirements, *, allow_source_builds: bool) -> list[str]:
    """The command a build container runs (argv, no shell: requirements are never parsed)."""
    extra = [] if allow_source_builds else ["--no-build"]
    # bytecode compiled at build, not on every container start
    return ["uv", "pip", "install", "--no-progress", "--compile-bytecode", *extra, *requirements]


def split_reference(image: str) -> tuple[str, str | None]:
    """``(repository, tag or digest)`` of an image reference; a port is not a tag."""
    if "@" in image:
        repository, digest = image.split("@", 1)
        return repository, digest
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = image.rsplit(":", 1)
        return repository, tag
    return image, None


class DockerImageBuilder(ImageBuilder):
    """Builds environment images with a Docker daemon (docker-py)."""

    docker_url = Unicode(
        config=True,
        help="""
        The Docker daemon that builds: ``unix:///var/run/docker.sock`` (the
        hub's own machine) or ``tcp://builder:2376`` (a remote daemon, e.g. a
        docker-in-docker builder pod on Kubernetes; give ``tls_config`` then).
        Default: ``DOCKER_HOST``, else the local socket.
        """,
    )

    tls_config = Dict(
        config=True,
        help="Keyword arguments of ``docker.tls.TLSConfig`` for a ``tcp://`` daemon "
        "(``client_cert``, ``ca_cert``, ``verify``).",
    )

    auth_config = Dict(
        config=True,
        help="Registry credentials for pushes and lookups (``{'username': …, 'password': …}``); "
        "empty: the daemon's own login.",
    )

    network_mode = Unicode(
        "bridge",
        config=True,
        help="""
        Network of build containers: they reach the package index, nothing
        else needs them. ``"host"`` where the index is reachable only from the
        host's network (a proxy on localhost, a host-only CA setup).
        """,
    )

    allow_source_builds = Bool(
        False,
        config=True,
        help="""
        Let builds compile packages from source distributions (``setup.py``
        runs inside the build container). Off: only wheels install
        (``uv --no-build``), so no user-chosen code runs at build time.
        """,
    )

    memory_limit = Unicode(
        "2G",
        config=True,
        help="Memory limit of one build container (Docker's format: ``512m``, ``2g``).",
    )

    @default("docker_url")
    def _default_docker_url(self):
        return os.environ.get(envvars.DOCKER_HOST, "unix:///var/run/docker.sock")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._local = threading.local()
        self._api_version: str | None = None

    @property
    def client(self) -> docker.APIClient:
        # docker-py clients are not thread safe: one per worker thread
        client = getattr(self._local, "client", None)
        if client is None:
            tls = docker.tls.TLSConfig(**self.tls_config) if self.tls_config else None
            # negotiate the API version once: "auto" costs a daemon round trip per client
            client = self._local.client = docker.APIClient(
                base_url=self.docker_url, version=self._api_version or "auto", tls=tls, timeout=120
            )
            self._api_version = client.api_version
        return client

    def _call(self, method: str, *args, **kwargs):
        return asyncio.to_thread(lambda: getattr(self.client, method)(*args, **kwargs))

    async def resolve_base(self, image: str) -> str:
        repository, ref = split_reference(image)
        if ref and ref.startswith("sha256:"):
            return image
        try:
            found = await self._call("inspect_distribution", image, auth_config=self.auth_config or None)
        except APIError as e:
            raise ImageBuildError(
                f"image: the base image {image} is not in its registry ({e.explanation or e}); "
                "tell your hub administrator",
                user_error=False,
            ) from None
        return f"{repository}@{found['Descriptor']['digest']}"

    async def lookup(self, tag: str) -> str | None:
        try:
            found = await self._call("inspect_distribution", tag, auth_config=self.auth_config or None)
        except (NotFound, APIError):
            return None
        return found["Descriptor"]["digest"]

    async def present_locally(self, image: str) -> bool:
        try:
            await self._call("inspect_image", image)
            return True
        except (NotFound, APIError):
            return False

    async def pull(self, image: str) -> None:
        await self._ensure_pulled(image, lambda line: None)

    async def build(self, base_ref: str, requirements, tag: str, emit: LineSink) -> str:
        await self._ensure_pulled(base_ref, emit)
        base = await self._call("inspect_image", base_ref)
        container = await self._call(
            "create_container",
            base_ref,
            command=install_command(requirements, allow_source_builds=self.allow_source_builds),
            labels={BUILD_LABEL: tag},
            host_config=self.client.create_host_config(
                network_mode=self.network_mode,
                mem_limit=self.memory_limit,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                privileged=False,
            ),
        )
        cid = container["Id"]
        output: list[str] = []
        try:
            await self._call("start", cid)
            await self._stream(cid, output, emit)
            code = (await self._call("wait", cid))["StatusCode"]
            if code != 0:
                tail = "\n".join(output[-40:])
                raise ImageBuildError(
                    f"packages: installing {', '.join(requirements)} failed:\n{tail}", "\n".join(output)
                )
            repository, label = split_reference(tag)
            await self._call(
                "commit", cid, repository=repository, tag=label,
                changes=_restore_config(base["Config"]),
            )
        finally:
            await asyncio.shield(self._call("remove_container", cid, force=True))
        try:
            return await self._push_and_verify(tag, emit)
        except BaseException:
            await asyncio.shield(self._untag(tag))
            raise

    async def _ensure_pulled(self, image: str, emit: LineSink) -> None:
        if await self.present_locally(image):
            return
        emit(f"Pulling the base image {image}")
        repository, ref = split_reference(image)
        await self._call("pull", repository, ref, auth_config=self.auth_config or None)

    async def _stream(self, cid: str, output: list[str], emit: LineSink) -> None:
        queue: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def read():
            try:
                for chunk in self.client.logs(cid, stream=True, follow=True):
                    for line in chunk.decode(errors="replace").splitlines():
                        if line.strip():
                            loop.call_soon_threadsafe(queue.put_nowait, line.rstrip())
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        reader = loop.run_in_executor(None, read)
        try:
            while (line := await queue.get()) is not None:
                output.append(line)
                emit(line)
            await reader
        except BaseException:
            # timed out or cancelled: stop the installer (the log reader then ends too)
            await asyncio.shield(asyncio.to_thread(self._kill, cid))
            raise

    def _kill(self, cid: str) -> None:
        try:
            self.client.kill(cid)
        except APIError:
            pass

    async def _push_and_verify(self, tag: str, emit: LineSink) -> str:
        emit(f"Pushing {tag}")
        repository, label = split_reference(tag)

        def push() -> str:
            pushed = ""
            for event in self.client.push(
                repository, label, stream=True, decode=True, auth_config=self.auth_config or None
            ):
                if event.get("error"):
                    raise ImageBuildError(
                        f"image: pushing {tag} failed: {event['error']}", user_error=False
                    )
                pushed = (event.get("aux") or {}).get("Digest") or pushed
            return pushed

        pushed = await asyncio.to_thread(push)
        in_registry = await self.lookup(tag)
        if not in_registry:
            raise ImageBuildError(f"image: {tag} is not in the registry after its push", user_error=False)
        if pushed and in_registry != pushed:
            # content-addressed: another builder pushed the same environment first
            self.log.info("%s: the registry holds %s (another build), not %s", tag, in_registry, pushed)
        return in_registry

    async def _untag(self, tag: str) -> None:
        try:
            await self._call("remove_image", tag, noprune=False)
        except APIError:
            pass


def _restore_config(config: dict) -> list[str]:
    """Dockerfile instructions giving a committed image the base's command and user back
    (a build container ran the installer as its command)."""
    changes = []
    if config.get("Cmd"):
        changes.append(f"CMD {json.dumps(config['Cmd'])}")
    if config.get("Entrypoint"):
        changes.append(f"ENTRYPOINT {json.dumps(config['Entrypoint'])}")
    if config.get("User"):
        changes.append(f"USER {config['User']}")
    if config.get("WorkingDir"):
        changes.append(f"WORKDIR {config['WorkingDir']}")
    return changes
